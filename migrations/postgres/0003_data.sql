-- The data catalog: each dataset version's schema, size and input versions
-- (lineage), when retention deleted it, and the outcome of every validate
-- try with each of its checks.

ALTER TABLE dataset_versions ADD COLUMN schema TEXT;
ALTER TABLE dataset_versions ADD COLUMN bytes BIGINT;
ALTER TABLE dataset_versions ADD COLUMN inputs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE dataset_versions ADD COLUMN deleted_at TIMESTAMPTZ;
CREATE INDEX dataset_versions_by_run ON dataset_versions (dataset, dag_id, run_id);

CREATE TABLE quality_results (
    id                 BIGSERIAL PRIMARY KEY,
    dag_id             TEXT    NOT NULL,
    run_id             TEXT    NOT NULL,
    task_id            TEXT    NOT NULL,
    try_number         BIGINT  NOT NULL,
    dataset            TEXT    NOT NULL,
    input_version      BIGINT,
    rows_in            BIGINT  NOT NULL,
    rows_clean         BIGINT  NOT NULL,
    rows_quarantined   BIGINT  NOT NULL,
    clean_version      BIGINT,
    quarantine_version BIGINT,
    published          BOOLEAN NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX quality_results_by_run ON quality_results (dag_id, run_id);

CREATE TABLE check_results (
    quality_id  BIGINT  NOT NULL REFERENCES quality_results (id) ON DELETE CASCADE,
    position    BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    column_name TEXT,
    passed      BOOLEAN NOT NULL,
    failed      BIGINT  NOT NULL,
    observed    TEXT,
    threshold   TEXT,
    severity    TEXT    NOT NULL CHECK (severity IN ('error', 'warn')),
    PRIMARY KEY (quality_id, position)
);
