# Stand-in for postgres:15, made by scripts/docker-base-images.sh when that image cannot be pulled:
# Debian's postgresql-15 with an entrypoint that initialises an empty data folder from
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB the way the official image does.
FROM debian:bookworm-slim
# The package would otherwise create and start a cluster of its own at install time.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data \
 && chmod 3777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
# PostgreSQL's fast shutdown, as in the official image.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
LABEL org.students-api.stand-in="postgres built from debian:bookworm-slim and Debian's postgresql-15"
