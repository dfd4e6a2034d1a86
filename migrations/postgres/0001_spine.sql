-- The spine: imported inputs, runs and their lines, approvers and approvals, audit log.
-- Money is BIGINT fen. Months are 'YYYY-MM' text, dates 'YYYY-MM-DD', times RFC 3339 UTC.

CREATE TABLE import_file (
    import_id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    file_name TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    UNIQUE (kind, sha256)
);

CREATE TABLE household_version (
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
);

CREATE TABLE decision (
    decision_id TEXT PRIMARY KEY,
    household_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    effective_month TEXT NOT NULL,
    end_month TEXT,
    amount_fen BIGINT,
    percent TEXT,
    months BIGINT,
    reason TEXT NOT NULL,
    ref TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_on TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    import_id BIGINT NOT NULL REFERENCES import_file (import_id)
);
CREATE INDEX decision_household ON decision (household_id);

CREATE TABLE staff_relative (
    staff_id TEXT NOT NULL,
    staff_name TEXT NOT NULL,
    relative_id_number TEXT NOT NULL,
    relation TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    import_id BIGINT NOT NULL REFERENCES import_file (import_id),
    PRIMARY KEY (staff_id, relative_id_number)
);
CREATE INDEX staff_relative_id ON staff_relative (relative_id_number);

CREATE TABLE treasury_voucher (
    voucher_no TEXT PRIMARY KEY,
    voucher_type TEXT NOT NULL,
    original_voucher_no TEXT,
    batch_id TEXT NOT NULL,
    bank_code TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    voucher_date TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    import_id BIGINT NOT NULL REFERENCES import_file (import_id)
);
CREATE INDEX treasury_voucher_batch ON treasury_voucher (batch_id);

CREATE TABLE run (
    run_id TEXT PRIMARY KEY,
    run_no BIGINT NOT NULL UNIQUE,
    programme TEXT NOT NULL,
    month TEXT NOT NULL,
    scope TEXT NOT NULL,
    pay_date TEXT NOT NULL,
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    digest TEXT NOT NULL,
    line_count BIGINT NOT NULL,
    pay_count BIGINT NOT NULL,
    payable_fen BIGINT NOT NULL,
    hold_count BIGINT NOT NULL,
    hold_fen BIGINT NOT NULL,
    approvals_required BIGINT NOT NULL,
    cancelled_by TEXT,
    cancelled_at TEXT,
    cancel_reason TEXT
);
-- One standing run per programme, month and scope (a cancelled one does not stand).
CREATE UNIQUE INDEX run_one_standing ON run (programme, month, scope) WHERE state <> 'cancelled';

CREATE TABLE run_line (
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
    end_to_end_id TEXT NOT NULL UNIQUE,
    flags TEXT NOT NULL,
    arrears_sources TEXT NOT NULL,
    PRIMARY KEY (run_id, line_no)
);
CREATE INDEX run_line_household ON run_line (household_id);

CREATE TABLE approver (
    name TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL
);

CREATE TABLE approval (
    run_id TEXT NOT NULL REFERENCES run (run_id),
    approver TEXT NOT NULL REFERENCES approver (name),
    digest TEXT NOT NULL,
    line_count BIGINT NOT NULL,
    payable_fen BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature_hex TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    PRIMARY KEY (run_id, approver, digest)
);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
