-- Issue #7: a run's lines clustered by their key (run_id, line_no), with no unique index
-- on end_to_end_id. Compute wrote each line into four B-trees (the rowid table, the key's
-- index, the id's unique index, the household index); now two (the table and the
-- household index). Export reads a run's lines in key order, which is now the table's own order.
--
-- The id's uniqueness holds by construction: `end_to_end_id` is the prefix, then the run
-- number in exactly six digits, a hyphen and the line number in exactly eight
-- (run::end_to_end_id), so it spells (prefix, run_no, line_no) one way only; run_no is
-- unique in `run` and line_no in its run. The id is still the primary key of `payment`,
-- which export writes before any file leaves, so a duplicate would stop the export.
-- The queries that joined a payment to its line by the id now join by (run_id, line_no).
-- Same columns, same constraints otherwise; the rows are copied unchanged.

CREATE TABLE run_line_clustered (
    run_id TEXT NOT NULL REFERENCES run (run_id),
    line_no BIGINT NOT NULL,
    household_id TEXT NOT NULL,
    approved_from TEXT NOT NULL,
    region_code TEXT NOT NULL,
    area TEXT NOT NULL,
    status TEXT NOT NULL,
    base_fen BIGINT NOT NULL,
    supplements_fen BIGINT NOT NULL,
    arrears_fen BIGINT NOT NULL,
    reduction_fen BIGINT NOT NULL,
    recovery_fen BIGINT NOT NULL,
    payable_fen BIGINT NOT NULL CHECK (payable_fen >= 0),
    bank_code TEXT NOT NULL,
    account_number TEXT NOT NULL,
    account_name TEXT NOT NULL,
    head_id_number TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    flags TEXT NOT NULL,
    arrears_sources TEXT NOT NULL,
    PRIMARY KEY (run_id, line_no)
) WITHOUT ROWID;

INSERT INTO run_line_clustered SELECT * FROM run_line;
DROP TABLE run_line;
ALTER TABLE run_line_clustered RENAME TO run_line;
CREATE INDEX run_line_household ON run_line (household_id);
