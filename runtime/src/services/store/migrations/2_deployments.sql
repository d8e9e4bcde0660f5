-- Commands deployed to the whole fleet (`sandbot deploy`): the component
-- and its `[commands.<name>]` entry (TOML, without `wasm`). A name's
-- current version is its newest row not rolled back; a rollback marks
-- that row, so the one before serves again, and nothing is ever deleted.

CREATE TABLE deployments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    wasm           BYTEA NOT NULL,
    entry          TEXT NOT NULL,
    deployed_by    TEXT NOT NULL,
    deployed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    rolled_back_at TIMESTAMPTZ
);
CREATE INDEX deployments_by_name ON deployments (name, id);
