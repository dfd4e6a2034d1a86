-- The scheduled service (issue #6): a lease so one instance at a time does the
-- scheduler's or the inbox's work, and API tokens (only their SHA-256 is kept).
-- Times are RFC 3339 UTC text of one fixed width, so they compare as text.

CREATE TABLE lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE api_token (
    token_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('operator', 'approver', 'auditor')),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_token_user ON api_token (user_name);
