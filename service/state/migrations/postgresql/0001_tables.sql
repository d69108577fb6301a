-- The tables: customers (the row each apply locks), applied events by id, reversals by id, and
-- append-only counter entries. Amounts are NUMERIC: exact, summed exactly by SUM.
CREATE TABLE customers (
    customer_id text PRIMARY KEY
);
CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    event_id text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (customer_id),
    body_digest text NOT NULL,
    decision bytea NOT NULL
);
CREATE TABLE reversals (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    reversal_id text PRIMARY KEY,
    event_id text NOT NULL REFERENCES events (event_id),
    decision bytea NOT NULL
);
CREATE TABLE entries (
    event_id text NOT NULL,
    reversal_id text NOT NULL DEFAULT '',
    line integer NOT NULL,
    customer_id text NOT NULL,
    counter text NOT NULL,
    at timestamptz NOT NULL,
    amount numeric NOT NULL,
    kind text NOT NULL CHECK (kind IN ('apply', 'reverse')),
    PRIMARY KEY (event_id, reversal_id, line)
);
