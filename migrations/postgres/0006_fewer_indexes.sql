-- Issue #7: every payment and every bank result is written into each index of its table,
-- and two of those indexes served no query: `payment_household` (payments are read by
-- run, batch and end_to_end_id, never by household) and `payment_result_e2e` (result
-- lines are only ever appended and kept for the auditor). A result's status update also
-- writes a new entry in every index of `payment`, so one index fewer there is one write
-- fewer per result. (SQLite's migration 0006 also clusters `payment_result`; PostgreSQL
-- has no clustered tables.)

DROP INDEX payment_household;
DROP INDEX payment_result_e2e;
