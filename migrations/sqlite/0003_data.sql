-- The data catalog: each dataset version's schema, size and input versions
-- (lineage), when retention deleted it, and the outcome of every validate
-- try with each of its checks.

ALTER TABLE dataset_versions ADD COLUMN schema TEXT;
ALTER TABLE dataset_versions ADD COLUMN bytes INTEGER;
ALTER TABLE dataset_versions ADD COLUMN inputs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE dataset_versions ADD COLUMN deleted_at TEXT;
CREATE INDEX dataset_versions_by_run ON dataset_versions (dataset, dag_id, run_id);

CREATE TABLE quality_results (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id             TEXT    NOT NULL,
    run_id             TEXT    NOT NULL,
    task_id            TEXT    NOT NULL,
    try_number         INTEGER NOT NULL,
    dataset            TEXT    NOT NULL,
    input_version      INTEGER,
    rows_in            INTEGER NOT NULL,
    rows_clean         INTEGER NOT NULL,
    rows_quarantined   INTEGER NOT NULL,
    clean_version      INTEGER,
    quarantine_version INTEGER,
    published          BOOLEAN NOT NULL,
    created_at         TEXT    NOT NULL
);
CREATE INDEX quality_results_by_run ON quality_results (dag_id, run_id);

CREATE TABLE check_results (
    quality_id  INTEGER NOT NULL REFERENCES quality_results (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    column_name TEXT,
    passed      BOOLEAN NOT NULL,
    failed      INTEGER NOT NULL,
    observed    TEXT,
    threshold   TEXT,
    severity    TEXT    NOT NULL CHECK (severity IN ('error', 'warn')),
    PRIMARY KEY (quality_id, position)
);
