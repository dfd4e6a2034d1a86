-- Issue #7: the roster clustered by its key. Household ids start with the region code,
-- so a file's row order is not id order; as a rowid table, every read of a range of
-- households in id order (run computation, chunk by chunk) fetched each row from a
-- different page: a million random page reads per run. WITHOUT ROWID stores the rows
-- in (household_id, approved_from) order, so a range is read sequentially.
-- Same columns, same key, same constraints; the rows are copied unchanged.

CREATE TABLE household_version_clustered (
    household_id TEXT NOT NULL,
    approved_from TEXT NOT NULL,
    region_code TEXT NOT NULL,
    area TEXT NOT NULL,
    head_name TEXT NOT NULL,
    head_id_number TEXT NOT NULL,
    members BIGINT NOT NULL,
    elderly BIGINT NOT NULL,
    minors BIGINT NOT NULL,
    severely_disabled BIGINT NOT NULL,
    seriously_ill BIGINT NOT NULL,
    review_class TEXT NOT NULL,
    last_review TEXT NOT NULL,
    base_fen BIGINT NOT NULL CHECK (base_fen >= 0),
    employment_cost_fen BIGINT,
    approval_ref TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    bank_code TEXT NOT NULL,
    account_number TEXT NOT NULL,
    account_kind TEXT NOT NULL,
    account_name TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    import_id BIGINT NOT NULL REFERENCES import_file (import_id),
    PRIMARY KEY (household_id, approved_from)
) WITHOUT ROWID;

INSERT INTO household_version_clustered SELECT * FROM household_version;
DROP TABLE household_version;
ALTER TABLE household_version_clustered RENAME TO household_version;
