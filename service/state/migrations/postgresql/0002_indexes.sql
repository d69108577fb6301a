-- One indexed range scan per window: (customer, counter, at), covering the amount.
CREATE INDEX entries_window ON entries (customer_id, counter, at) INCLUDE (amount);
CREATE INDEX events_customer ON events (customer_id, seq);
CREATE INDEX reversals_event ON reversals (event_id, seq);
