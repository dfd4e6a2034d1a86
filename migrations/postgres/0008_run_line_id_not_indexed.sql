-- Issue #7: no unique index on run_line.end_to_end_id. Compute wrote each line into three
-- B-trees (the key's, the id's, the household's); now two.
--
-- The id's uniqueness holds by construction: `end_to_end_id` is the prefix, then the run
-- number in exactly six digits, a hyphen and the line number in exactly eight
-- (run::end_to_end_id), so it spells (prefix, run_no, line_no) one way only; run_no is
-- unique in `run` and line_no in its run. The id is still the primary key of `payment`,
-- which export writes before any file leaves, so a duplicate would stop the export.
-- The queries that joined a payment to its line by the id now join by (run_id, line_no).
-- (SQLite's migration 0008 also clusters run_line by its key; PostgreSQL has no
-- clustered tables.)

ALTER TABLE run_line DROP CONSTRAINT run_line_end_to_end_id_key;
