# Stand-in for haproxy:2.6, made by scripts/docker-base-images.sh when that image cannot be pulled:
# Debian's haproxy (2.6 in bookworm) laid out as the official image is: the configuration at
# /usr/local/etc/haproxy/haproxy.cfg, run in the foreground as the unprivileged user haproxy.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /usr/local/etc/haproxy
USER haproxy
# The official image's graceful stop: finish the requests in flight, then exit.
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
LABEL org.students-api.stand-in="haproxy built from debian:bookworm-slim and Debian's haproxy"
