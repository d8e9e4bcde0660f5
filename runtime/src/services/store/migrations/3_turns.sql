-- Turns that processes take one after another (`Store::take_turn`), such
-- as Discord's identify buckets: the earliest time the next turn may start.

CREATE TABLE turns (
    queue   TEXT PRIMARY KEY,
    next_at TIMESTAMPTZ NOT NULL
);
