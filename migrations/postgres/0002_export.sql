-- Export (issue #4): one row per bank file (batch) and one per instructed payment.
-- Each end_to_end_id is in exactly one batch. The payment's status columns are where
-- bank results (issue #5) will land; export writes 'instructed'.

CREATE TABLE batch (
    batch_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES run (run_id),
    batch_seq BIGINT NOT NULL,
    layout TEXT NOT NULL,
    bank_prefix TEXT NOT NULL,
    payer_account TEXT NOT NULL,
    pay_date TEXT NOT NULL,
    file_name TEXT NOT NULL,
    record_count BIGINT NOT NULL CHECK (record_count > 0),
    total_fen BIGINT NOT NULL CHECK (total_fen >= 0),
    sha256 TEXT NOT NULL,
    signature_algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    exported_by TEXT NOT NULL,
    exported_at TEXT NOT NULL,
    UNIQUE (run_id, batch_seq)
);

CREATE TABLE payment (
    end_to_end_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES run (run_id),
    batch_id TEXT NOT NULL REFERENCES batch (batch_id),
    line_no BIGINT NOT NULL,
    household_id TEXT NOT NULL,
    bank_code TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen >= 0),
    status TEXT NOT NULL DEFAULT 'instructed',
    status_updated_at TEXT,
    reason_code TEXT,
    reason_text TEXT,
    bank_serial TEXT,
    result_sha256 TEXT,
    UNIQUE (run_id, line_no)
);
CREATE INDEX payment_batch ON payment (batch_id);
CREATE INDEX payment_household ON payment (household_id);
