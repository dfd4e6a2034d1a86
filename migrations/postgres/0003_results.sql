-- Bank results (issue #5): each result file once, each result line kept, exceptions for
-- the auditor, and households held after a failed payment. `payment.results_seen` is the
-- set of statuses received (see reconcile::state), from which `payment.status` follows.

ALTER TABLE payment ADD COLUMN results_seen BIGINT NOT NULL DEFAULT 0;

CREATE TABLE result_file (
    result_file_id BIGSERIAL PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL,
    bank_file_id TEXT,
    original_batch_id TEXT,
    file_name TEXT NOT NULL,
    result_count BIGINT NOT NULL,
    ingested_by TEXT NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE UNIQUE INDEX result_file_bank_id ON result_file (format, bank_file_id) WHERE bank_file_id IS NOT NULL;

CREATE TABLE payment_result (
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
);
CREATE INDEX payment_result_e2e ON payment_result (end_to_end_id);

CREATE TABLE exception (
    exception_id BIGSERIAL PRIMARY KEY,
    run_id TEXT,
    kind TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    voucher_no TEXT NOT NULL,
    amount_fen BIGINT,
    detail TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX exception_run ON exception (run_id);

CREATE TABLE household_hold (
    household_id TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    account_number TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (household_id, end_to_end_id)
);
