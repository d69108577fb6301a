-- The ledger of lots (docs/state.md, "The ledger"): every award a lot, every movement a line.
-- Amounts are integer millionths of a unit (a currency keeps at most 6 decimals), summed
-- exactly by SQLite's integer SUM; instants are integer microseconds since the epoch (UTC).
-- No column holds a balance: a balance is a sum of lines.
CREATE TABLE ledger_lots (
    lot_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    earned_at INTEGER NOT NULL,
    available_from INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    rule TEXT NOT NULL,
    revision TEXT NOT NULL,
    debt INTEGER NOT NULL DEFAULT 0,
    -- Set by the expiry job once the lot expired and its expiry line (if any) was posted.
    expiry_posted INTEGER NOT NULL DEFAULT 0
);
-- A line carries its lot's dates, so that a balance is one indexed scan of the lines.
CREATE TABLE ledger_lines (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    lot_id TEXT NOT NULL REFERENCES ledger_lots (lot_id),
    at INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('award', 'redeem', 'reverse', 'expire', 'clawback')),
    ref TEXT NOT NULL,
    available_from INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (lot_id, kind, ref)
);
CREATE INDEX ledger_lines_balance ON ledger_lines
    (customer_id, currency, at, available_from, expires_at, amount);
CREATE INDEX ledger_lines_statement ON ledger_lines (customer_id, at, seq);
CREATE INDEX ledger_lines_customer ON ledger_lines (customer_id, seq);
CREATE INDEX ledger_lots_customer ON ledger_lots (customer_id, currency, expires_at);
CREATE INDEX ledger_lots_expiry ON ledger_lots (expires_at, lot_id) WHERE expiry_posted = 0 AND debt = 0;
CREATE INDEX ledger_lots_event ON ledger_lots (event_id);
CREATE TABLE redemptions (
    redemption_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    body_digest TEXT NOT NULL,
    response BLOB NOT NULL
);
