-- Issue #7: a payment is keyed by one integer, `payment_key` = run_no * 10^8 + line_no
-- (run::payment_key): the two numbers its end_to_end_id is made of. As the table's
-- INTEGER PRIMARY KEY it is the rowid itself, so a payment lives in two B-trees (the
-- table and `payment_batch`) instead of four: the unique indexes on end_to_end_id and
-- on (run_id, line_no) are gone. Measured with the sqlite3 shell on a 1M-payment
-- month's rows, foreign keys on: the insert took 2.4-3.1 s with the four B-trees and
-- 1.7-2.1 s with the two; `disburse bench` at 1M, export 5.7-5.9 s -> 4.8-5.0 s.
--
-- What the two unique indexes guaranteed still holds:
-- * A line is instructed at most once: the key is one to one with (run_no, line_no),
--   `line_no` is checked against it here, and run_no is one to one with run_id in
--   `run`. The one insert path (StoreTx::insert_payments) computes the key from the
--   number of the run it writes and asserts that the row's run_id is that run's.
-- * An end_to_end_id is issued at most once: it spells the prefix, then run_no in six
--   digits, a hyphen and line_no in eight (run::end_to_end_id), and the one insert path
--   asserts that its digits name the row's key (run::payment_key_of), in release builds
--   too; two payments with one id would have one key, which the primary key refuses.
--   The check is there and not in SQL here: the same test in SQL (substr and CAST, or
--   printf) cost 0.4 to 0.75 s per million rows.
--
-- Ingest recorded the result file that last moved a payment as its SHA-256 (64
-- characters) and the time as text, both facts of the file, in every payment row;
-- `result_file_id` names the file instead (its `sha256` and `ingested_at` are the same
-- values: ingest set both from the file it applied). A status update then grows each
-- row by a few bytes, not by about 85. It is not a foreign key, as the SHA-256 was
-- not: ingest sets it to the file it inserts in the same transaction, and a checked
-- reference is a probe of `result_file` for every payment updated.
--
-- Every stored payment is copied with its key, from its run's number and its line.
-- The migration stops first, changing nothing, if a payment names no run or its id's
-- digits are not its run's number and its line (a database edited by hand): the copy
-- would otherwise lose the first and give the second a key its id does not name.
--
-- A payment's identity (key, id, line, run, batch) never changes once written: the
-- trigger below refuses an update that sets one, as PostgreSQL's do (migrations 0010
-- and 0011). Ingest's update sets none of them, so it never fires there.

CREATE TEMPORARY TABLE payment_keyed_check (bad BIGINT NOT NULL CHECK (bad = 0));
INSERT INTO payment_keyed_check
SELECT COUNT(*) FROM payment p LEFT JOIN run r ON r.run_id = p.run_id
WHERE r.run_no IS NULL
   OR substr(p.end_to_end_id, -15) <> printf('%06d-%08d', r.run_no, p.line_no);
DROP TABLE payment_keyed_check;

CREATE TABLE payment_keyed (
    payment_key INTEGER PRIMARY KEY NOT NULL,
    end_to_end_id TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES run (run_id),
    batch_id TEXT NOT NULL REFERENCES batch (batch_id),
    line_no BIGINT NOT NULL CHECK (line_no = payment_key % 100000000),
    household_id TEXT NOT NULL,
    bank_code TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen >= 0),
    status TEXT NOT NULL DEFAULT 'instructed',
    reason_code TEXT,
    reason_text TEXT,
    bank_serial TEXT,
    results_seen BIGINT NOT NULL DEFAULT 0,
    result_file_id BIGINT
);

INSERT INTO payment_keyed (payment_key, end_to_end_id, run_id, batch_id, line_no,
    household_id, bank_code, amount_fen, status, reason_code, reason_text, bank_serial,
    results_seen, result_file_id)
SELECT r.run_no * 100000000 + p.line_no, p.end_to_end_id, p.run_id, p.batch_id, p.line_no,
    p.household_id, p.bank_code, p.amount_fen, p.status, p.reason_code, p.reason_text,
    p.bank_serial, p.results_seen,
    (SELECT f.result_file_id FROM result_file f WHERE f.sha256 = p.result_sha256)
FROM payment p JOIN run r ON r.run_id = p.run_id;

DROP TABLE payment;
ALTER TABLE payment_keyed RENAME TO payment;
CREATE INDEX payment_batch ON payment (batch_id);

CREATE TRIGGER payment_identity_fixed BEFORE UPDATE OF payment_key, end_to_end_id, line_no, run_id, batch_id ON payment
FOR EACH ROW WHEN OLD.payment_key IS NOT NEW.payment_key OR OLD.end_to_end_id IS NOT NEW.end_to_end_id
    OR OLD.line_no IS NOT NEW.line_no OR OLD.run_id IS NOT NEW.run_id OR OLD.batch_id IS NOT NEW.batch_id
BEGIN
    SELECT RAISE(ABORT, 'a payment never changes its key, id, line, run or batch');
END;
