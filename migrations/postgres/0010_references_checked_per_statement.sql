-- Issue #7: the four tables written a row per household (household_version, run_line,
-- payment, payment_result) have their references checked once per statement instead
-- of once per row (PostgreSQL only; SQLite checks a foreign key with one in-process
-- B-tree probe and keeps its constraints).
--
-- A PostgreSQL foreign key queues a trigger event for every inserted row and runs a
-- query per event. Measured on a 500k month: COPY of 500k payments (two keys) took
-- 6.9-7.2 s with them and 3.1-3.3 s with the statement check below; COPY of 500k result
-- lines 2.5-3.5 s against 0.9 s with no check at all.
--
-- What the foreign keys guaranteed still holds:
-- * A new row names an existing parent: an AFTER INSERT trigger per statement reads
--   the statement's new rows (a transition table), takes a key-share lock on each
--   parent they name, as a foreign key does, then refuses the statement if any key
--   names no parent. The lock keeps a parent from being deleted, or its key changed,
--   until the inserting transaction ends.
-- * A row's reference never changes: the application never moves a line, payment or
--   result to another run, batch or file, so changing one is refused outright.
--   (Stricter than a foreign key, which would allow moving to another existing parent.)
--   Ingest's status update sets none of these columns, so the trigger never fires for it.
-- * A parent with children is neither deleted nor re-keyed: a row trigger on the
--   parent looks for a child by the child's index on the key. After waiting for a
--   key-share lock it sees the children the lock's holder committed.
-- Violations raise SQLSTATE 23503 (foreign_key_violation), as the constraints did.

CREATE FUNCTION refuse_orphans() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    child_column text := TG_ARGV[0];
    parent_table text := TG_ARGV[1];
    parent_column text := TG_ARGV[2];
    orphan text;
BEGIN
    EXECUTE format(
        'SELECT count(*) FROM (SELECT 1 FROM %1$I p WHERE p.%2$I IN '
        '(SELECT DISTINCT %3$I FROM new_rows) FOR KEY SHARE OF p) locked',
        parent_table, parent_column, child_column);
    EXECUTE format(
        'SELECT n.k::text FROM (SELECT DISTINCT %1$I AS k FROM new_rows) n '
        'WHERE NOT EXISTS (SELECT 1 FROM %2$I p WHERE p.%3$I = n.k) LIMIT 1',
        child_column, parent_table, parent_column)
        INTO orphan;
    IF orphan IS NOT NULL THEN
        RAISE EXCEPTION '%.% = % names no row of %', TG_TABLE_NAME, child_column, orphan, parent_table
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION refuse_moved_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a row of % never changes its %', TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE FUNCTION refuse_orphaning() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    child_table text := TG_ARGV[0];
    child_column text := TG_ARGV[1];
    parent_column text := TG_ARGV[2];
    key text := to_jsonb(OLD) ->> parent_column;
    key_type text;
    referenced boolean;
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(NEW) ->> parent_column = key THEN
        RETURN NEW;
    END IF;
    -- The key is compared in the child column's own type, so the child's index serves.
    SELECT format_type(atttypid, atttypmod) INTO key_type FROM pg_attribute
        WHERE attrelid = child_table::regclass AND attname = child_column;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %1$I WHERE %2$I = CAST($1 AS %3$s))',
        child_table, child_column, key_type)
        INTO referenced USING key;
    IF referenced THEN
        RAISE EXCEPTION '% % = % is still named by %', TG_TABLE_NAME, parent_column, key, child_table
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

ALTER TABLE household_version DROP CONSTRAINT household_version_import_id_fkey;
ALTER TABLE run_line DROP CONSTRAINT run_line_run_id_fkey;
ALTER TABLE payment DROP CONSTRAINT payment_run_id_fkey;
ALTER TABLE payment DROP CONSTRAINT payment_batch_id_fkey;
ALTER TABLE payment_result DROP CONSTRAINT payment_result_result_file_id_fkey;

CREATE TRIGGER household_version_import AFTER INSERT ON household_version
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_orphans('import_id', 'import_file', 'import_id');
CREATE TRIGGER run_line_run AFTER INSERT ON run_line
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_orphans('run_id', 'run', 'run_id');
CREATE TRIGGER payment_run AFTER INSERT ON payment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_orphans('run_id', 'run', 'run_id');
CREATE TRIGGER payment_batch AFTER INSERT ON payment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_orphans('batch_id', 'batch', 'batch_id');
CREATE TRIGGER payment_result_file AFTER INSERT ON payment_result
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_orphans('result_file_id', 'result_file', 'result_file_id');

CREATE TRIGGER household_version_import_fixed BEFORE UPDATE OF import_id ON household_version
    FOR EACH ROW WHEN (OLD.import_id IS DISTINCT FROM NEW.import_id)
    EXECUTE FUNCTION refuse_moved_reference('import_id');
CREATE TRIGGER run_line_run_fixed BEFORE UPDATE OF run_id ON run_line
    FOR EACH ROW WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id)
    EXECUTE FUNCTION refuse_moved_reference('run_id');
CREATE TRIGGER payment_run_fixed BEFORE UPDATE OF run_id ON payment
    FOR EACH ROW WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id)
    EXECUTE FUNCTION refuse_moved_reference('run_id');
CREATE TRIGGER payment_batch_fixed BEFORE UPDATE OF batch_id ON payment
    FOR EACH ROW WHEN (OLD.batch_id IS DISTINCT FROM NEW.batch_id)
    EXECUTE FUNCTION refuse_moved_reference('batch_id');
CREATE TRIGGER payment_result_file_fixed BEFORE UPDATE OF result_file_id ON payment_result
    FOR EACH ROW WHEN (OLD.result_file_id IS DISTINCT FROM NEW.result_file_id)
    EXECUTE FUNCTION refuse_moved_reference('result_file_id');

CREATE TRIGGER import_file_household_versions BEFORE DELETE OR UPDATE OF import_id ON import_file
    FOR EACH ROW EXECUTE FUNCTION refuse_orphaning('household_version', 'import_id', 'import_id');
CREATE TRIGGER run_run_lines BEFORE DELETE OR UPDATE OF run_id ON run
    FOR EACH ROW EXECUTE FUNCTION refuse_orphaning('run_line', 'run_id', 'run_id');
CREATE TRIGGER run_payments BEFORE DELETE OR UPDATE OF run_id ON run
    FOR EACH ROW EXECUTE FUNCTION refuse_orphaning('payment', 'run_id', 'run_id');
CREATE TRIGGER batch_payments BEFORE DELETE OR UPDATE OF batch_id ON batch
    FOR EACH ROW EXECUTE FUNCTION refuse_orphaning('payment', 'batch_id', 'batch_id');
CREATE TRIGGER result_file_payment_results BEFORE DELETE OR UPDATE OF result_file_id ON result_file
    FOR EACH ROW EXECUTE FUNCTION refuse_orphaning('payment_result', 'result_file_id', 'result_file_id');
