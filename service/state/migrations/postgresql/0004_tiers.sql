-- A customer's tier (docs/state.md, "Tiers"): reached on Apply when the qualifying measure
-- earned in the window reaches a threshold, lowered by the tier job at kept_until. A customer
-- with no tier has no row.
CREATE TABLE tier_status (
    customer_id text PRIMARY KEY REFERENCES customers (customer_id),
    tier text NOT NULL,
    since timestamptz NOT NULL,
    kept_until timestamptz NOT NULL
);
CREATE INDEX tier_status_due ON tier_status (kept_until, customer_id);
