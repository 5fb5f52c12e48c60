-- A dataset's folder is a Delta Lake table: each version weir publishes is
-- one Delta commit. `delta_version` is the Delta table version whose
-- snapshot holds this version's files (NULL: written before the table had
-- a Delta log, or an erasure rewrote it out of the table's history).
ALTER TABLE dataset_versions ADD COLUMN delta_version BIGINT;
