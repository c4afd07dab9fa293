-- Expand: a new table, which the binaries already serving never name. It holds the keys of
-- `POST /students` requests sent with an `Idempotency-Key` header (docs/api.md, "Retrying a
-- write"), each stored by the statement that inserts its student, so that a client that retries
-- after a lost answer gets the first answer back instead of a second student.
CREATE TABLE idempotency_key (
    -- The token the key was sent with: keys are the client's, so two clients may choose the
    -- same one. No foreign key to api_token: checking it would lock the token's row on every
    -- keyed write, and a revoked token's keys expire with the others.
    token_id integer NOT NULL,
    key text NOT NULL,
    -- SHA-256 of the method, the path and the parsed body: the same key with another request
    -- is refused rather than answered with the first request's answer.
    fingerprint bytea NOT NULL
        CONSTRAINT idempotency_key_fingerprint_length CHECK (octet_length(fingerprint) = 32),
    -- The student the first answer showed, as row_to_json wrote it: a replay answers 201 with
    -- it, even after the student changed or was deleted. Only successes are kept: a failed
    -- write stored no key, so its retry writes.
    resource text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The key's format (1 to 255 printable ASCII characters) is checked by the service, which
    -- answers a 422 that says so; a CHECK here would only cost every insert a regex.
    PRIMARY KEY (token_id, key)
);

-- The sweep of keys older than 24 hours. BRIN: keys arrive in created_at order, and a BRIN
-- index costs an insert next to nothing, where a B-tree is a second index to write per key.
CREATE INDEX idempotency_key_created_at_idx ON idempotency_key USING brin (created_at);
