-- Issue #7: payment pages are filled to 35% only, so that ingest's status update is
-- heap-only (HOT) on PostgreSQL. An update that finds no room on its row's page writes
-- the new row version elsewhere and a new entry into each of payment's three indexes
-- (the id, (run_id, line_no), batch_id): five WAL records a row, the largest part of a
-- 2M month's ingest. None of the columns ingest sets is indexed, so when the new
-- version fits on the same page PostgreSQL writes no index entry at all.
--
-- Why 35: ingest fills columns export left NULL (result_sha256, bank_serial,
-- status_updated_at), so a row's new version is about one and a half times its old
-- one, and the old versions stay on the page until the transaction that updated them
-- commits. Measured on a 500k month: 45 left 21% of updates non-heap-only, 35 none.
-- The table is no larger after ingest than before this change (43 MB against 39 MB
-- at 100k, with 12 MB of indexes against 15 MB), because a non-HOT update leaves
-- a dead row version behind as well. SQLite updates its B-tree in place and needs
-- nothing of the kind.
-- Only pages written from now on are filled to 35%; rows already stored stay where
-- they are.

ALTER TABLE payment SET (fillfactor = 35);
