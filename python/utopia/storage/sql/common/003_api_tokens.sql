-- API bearer tokens: only a SHA-256 of each token is stored (`utopia token create` prints it once).
CREATE TABLE utopia.api_tokens (
    token_hash text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    role text NOT NULL CHECK (role IN ('viewer', 'operator')),
    created_at timestamptz NOT NULL DEFAULT now()
);
