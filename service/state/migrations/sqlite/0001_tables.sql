-- The tables: customers (the row each apply serialises on), applied events by id, reversals by
-- id, and append-only counter entries. Instants are integer microseconds since the Unix epoch
-- (UTC), amounts their exact decimal text (summed exactly in Python, never as REAL).
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY
);
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    body_digest TEXT NOT NULL,
    decision BLOB NOT NULL
);
CREATE TABLE reversals (
    reversal_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (event_id),
    decision BLOB NOT NULL
);
CREATE TABLE entries (
    event_id TEXT NOT NULL,
    reversal_id TEXT NOT NULL DEFAULT '',
    line INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    counter TEXT NOT NULL,
    at INTEGER NOT NULL,
    amount TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('apply', 'reverse')),
    PRIMARY KEY (event_id, reversal_id, line)
);
