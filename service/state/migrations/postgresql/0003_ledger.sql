-- The ledger of lots (docs/state.md, "The ledger"): every award a lot, every movement a line.
-- Amounts are integer millionths of a unit (a currency keeps at most 6 decimals), summed
-- exactly (SUM of bigint is numeric). No column holds a balance: a balance is a sum of lines.
CREATE TABLE ledger_lots (
    lot_id text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (customer_id),
    currency text NOT NULL,
    amount bigint NOT NULL,
    earned_at timestamptz NOT NULL,
    available_from timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    event_id text NOT NULL,
    policy text NOT NULL,
    rule text NOT NULL,
    revision text NOT NULL,
    debt integer NOT NULL DEFAULT 0,
    -- Set by the expiry job once the lot expired and its expiry line (if any) was posted.
    expiry_posted integer NOT NULL DEFAULT 0
);
-- A line carries its lot's dates, so that a balance is one indexed scan of the lines.
CREATE TABLE ledger_lines (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id text NOT NULL,
    currency text NOT NULL,
    lot_id text NOT NULL REFERENCES ledger_lots (lot_id),
    at timestamptz NOT NULL,
    amount bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('award', 'redeem', 'reverse', 'expire', 'clawback')),
    ref text NOT NULL,
    available_from timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    UNIQUE (lot_id, kind, ref)
);
CREATE INDEX ledger_lines_balance ON ledger_lines (customer_id, currency, at)
    INCLUDE (available_from, expires_at, amount);
CREATE INDEX ledger_lines_statement ON ledger_lines (customer_id, at, seq);
CREATE INDEX ledger_lines_customer ON ledger_lines (customer_id, seq);
CREATE INDEX ledger_lots_customer ON ledger_lots (customer_id, currency, expires_at);
CREATE INDEX ledger_lots_expiry ON ledger_lots (expires_at, lot_id) WHERE expiry_posted = 0 AND debt = 0;
CREATE INDEX ledger_lots_event ON ledger_lots (event_id);
CREATE TABLE redemptions (
    redemption_id text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (customer_id),
    body_digest text NOT NULL,
    response bytea NOT NULL
);
