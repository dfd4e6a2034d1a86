-- Issue #7: every payment and every bank result is written into each index of its table,
-- and two of those indexes served no query: `payment_household` (payments are read by
-- run, batch and end_to_end_id, never by household) and `payment_result_e2e` (result
-- lines are only ever appended and kept for the auditor). Measured on a 1M-household
-- month: export and ingest each spent about a fifth of their time on them.
-- `payment_result` is also clustered by its key `(result_file_id, line)`, so a result
-- line is one B-tree entry instead of a row plus its key index. Same columns, same key,
-- same constraints; the rows are copied unchanged.

DROP INDEX payment_household;
DROP INDEX payment_result_e2e;

CREATE TABLE payment_result_clustered (
    result_file_id BIGINT NOT NULL REFERENCES result_file (result_file_id),
    line BIGINT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    status TEXT NOT NULL,
    amount_fen BIGINT,
    reason_code TEXT,
    reason_text TEXT,
    bank_serial TEXT,
    outcome TEXT NOT NULL,
    PRIMARY KEY (result_file_id, line)
) WITHOUT ROWID;

INSERT INTO payment_result_clustered SELECT * FROM payment_result;
DROP TABLE payment_result;
ALTER TABLE payment_result_clustered RENAME TO payment_result;
