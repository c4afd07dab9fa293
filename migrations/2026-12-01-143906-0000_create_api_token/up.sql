-- Expand: a new table, which the binaries already serving never name. It holds the API's bearer
-- tokens (README, "Access control"): only each token's SHA-256 is stored, never the token, so a
-- copy of this table lets no one in.
CREATE TABLE api_token (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The rule `students-api token create` checks first, with a clearer message.
    name text NOT NULL CONSTRAINT api_token_name_format CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    -- `students`: read and write students, and scrape /metrics; `metrics`: only scrape /metrics.
    scope text NOT NULL DEFAULT 'students'
        CONSTRAINT api_token_scope_known CHECK (scope IN ('students', 'metrics')),
    sha256 bytea NOT NULL CONSTRAINT api_token_sha256_length CHECK (octet_length(sha256) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Recorded at most once a minute per token, so that a busy client does not rewrite the row
    -- on every request.
    last_used_at timestamptz,
    -- Kept rather than deleted, for `token list`; a revoked token's name can be given again.
    revoked_at timestamptz
);

-- Every request's lookup, by the presented token's digest.
CREATE UNIQUE INDEX api_token_sha256_key ON api_token (sha256);
-- One live token per name.
CREATE UNIQUE INDEX api_token_live_name_key ON api_token (name) WHERE revoked_at IS NULL;
