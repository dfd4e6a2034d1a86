-- Issue #7, the national month: scopes (region prefixes) computed and exported by
-- several workers on one database. A work item is one scope of one month; its run
-- number is reserved when the month is planned, so a worker that dies and a worker
-- that takes its lease over compute the same run, byte for byte. Times are RFC 3339
-- UTC text of one fixed width, so they compare as text (as in `lease`).
CREATE TABLE work_item (
    work_id INTEGER PRIMARY KEY AUTOINCREMENT,
    programme TEXT NOT NULL,
    month TEXT NOT NULL,
    scope TEXT NOT NULL,
    pay_date TEXT NOT NULL,
    run_no BIGINT NOT NULL UNIQUE,
    -- compute: waits for a worker; approve: computed, waits for its approvers (a
    -- worker exports it once the run is approved); done: exported; failed: refused
    -- or out of attempts (last_error says why); cancelled: its run was cancelled.
    step TEXT NOT NULL CHECK (step IN ('compute', 'approve', 'done', 'failed', 'cancelled')),
    holder TEXT,
    lease_until TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    planned_by TEXT NOT NULL,
    planned_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX work_item_month ON work_item (programme, month);

-- Values that several households' current versions share (P15 flags: one account or
-- ID number for two households), found by one scan of the whole roster per month and
-- roster generation (the last import), instead of once per scope's run.
CREATE TABLE shared_value_set (
    month TEXT NOT NULL,
    roster_generation BIGINT NOT NULL,
    PRIMARY KEY (month, roster_generation)
);
CREATE TABLE shared_value (
    month TEXT NOT NULL,
    roster_generation BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('account_number', 'head_id_number')),
    value TEXT NOT NULL,
    PRIMARY KEY (month, roster_generation, kind, value),
    FOREIGN KEY (month, roster_generation) REFERENCES shared_value_set (month, roster_generation)
);
