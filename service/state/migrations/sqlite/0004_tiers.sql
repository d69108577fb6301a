-- A customer's tier (docs/state.md, "Tiers"): reached on Apply when the qualifying measure
-- earned in the window reaches a threshold, lowered by the tier job at kept_until. Instants
-- are integer microseconds since the epoch (UTC). A customer with no tier has no row.
CREATE TABLE tier_status (
    customer_id TEXT PRIMARY KEY REFERENCES customers (customer_id),
    tier TEXT NOT NULL,
    since INTEGER NOT NULL,
    kept_until INTEGER NOT NULL
);
CREATE INDEX tier_status_due ON tier_status (kept_until, customer_id);
