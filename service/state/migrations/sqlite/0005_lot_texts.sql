-- A lot keeps its rule's customer-facing texts (docs/state.md, "The ledger"): the rule's
-- `says` texts as Apply filled them in, a JSON array of [language, text] pairs in the order
-- the rule declares them ("[]": the rule declares none). NULL: the lot was written before
-- this migration (a statement then reads the text from the stored explained response, if any).
ALTER TABLE ledger_lots ADD COLUMN texts TEXT;
