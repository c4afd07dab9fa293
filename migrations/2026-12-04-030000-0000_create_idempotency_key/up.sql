-- Expand: a new table, which the binaries already serving never name. It holds the answers of
-- `POST /students` requests sent with an `Idempotency-Key` header (docs/api.md, "Retrying a
-- write"), so that a client that retries after a lost answer gets the first answer back instead
-- of a second student.
CREATE TABLE idempotency_key (
    -- The token the key was sent with: keys are the client's, so two clients may choose the
    -- same one. No foreign key to api_token: checking it would lock the token's row on every
    -- keyed write, and a revoked token's keys expire with the others.
    token_id integer NOT NULL,
    key text NOT NULL CONSTRAINT idempotency_key_key_format CHECK (key ~ '^[ -~]{1,255}$'),
    -- SHA-256 of the method, the path and the parsed body: the same key with another request
    -- is refused rather than answered with the first request's answer.
    fingerprint bytea NOT NULL
        CONSTRAINT idempotency_key_fingerprint_length CHECK (octet_length(fingerprint) = 32),
    -- Only successes are kept: a failed write stored nothing, so its key stays free to retry.
    status integer NOT NULL CONSTRAINT idempotency_key_status_success CHECK (status BETWEEN 200 AND 299),
    location text,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_id, key)
);

-- The sweep of keys older than 24 hours.
CREATE INDEX idempotency_key_created_at_idx ON idempotency_key (created_at);
