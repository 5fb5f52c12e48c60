-- The text of a version's DAG file and contract files as first seen, for
-- people to read (JSON [{"name", "text"}]); NULL for versions made before.
ALTER TABLE dag_versions ADD COLUMN sources TEXT;
