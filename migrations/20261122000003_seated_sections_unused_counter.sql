-- Seated sections stopped counting their sales in `sections.sold` (payments no longer lock the
-- section row; a seated section's sales are its reservation items, see payments/pg.rs). Rows
-- written by the earlier code still carry counts, which made "tickets left" subtract those
-- seats twice; the audit checks the counter is 0.
UPDATE sections SET sold = 0 WHERE kind = 'SEATED' AND sold <> 0;
