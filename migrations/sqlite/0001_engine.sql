-- The engine's state: DAGs and their versions, runs, task instances and every
-- try, import errors, pools and the audit log.

CREATE TABLE dag_versions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id          TEXT    NOT NULL,
    version_number  INTEGER NOT NULL,
    hash            TEXT    NOT NULL,
    definition      TEXT    NOT NULL,
    fileloc         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    UNIQUE (dag_id, hash),
    UNIQUE (dag_id, version_number)
);

CREATE TABLE dags (
    dag_id            TEXT    PRIMARY KEY,
    fileloc           TEXT    NOT NULL,
    is_paused         BOOLEAN NOT NULL,
    is_stale          BOOLEAN NOT NULL DEFAULT 0,
    latest_version_id INTEGER NOT NULL REFERENCES dag_versions (id),
    schedule          TEXT    NOT NULL,
    timezone          TEXT    NOT NULL,
    description       TEXT,
    owner             TEXT,
    tags              TEXT    NOT NULL DEFAULT '[]',
    max_active_runs   INTEGER NOT NULL,
    max_active_tasks  INTEGER NOT NULL,
    last_parsed_at    TEXT    NOT NULL
);

CREATE TABLE dag_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id              TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    version_id          INTEGER NOT NULL REFERENCES dag_versions (id),
    run_type            TEXT    NOT NULL CHECK (run_type IN ('manual', 'scheduled', 'backfill', 'dataset_triggered')),
    state               TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    logical_date        TEXT,
    data_interval_start TEXT,
    data_interval_end   TEXT,
    run_after           TEXT    NOT NULL,
    conf                TEXT    NOT NULL DEFAULT '{}',
    note                TEXT,
    triggered_by        TEXT,
    trigger_versions    TEXT,
    queued_at           TEXT    NOT NULL,
    start_date          TEXT,
    end_date            TEXT,
    unfinished          INTEGER NOT NULL DEFAULT 0,
    failed              INTEGER NOT NULL DEFAULT 0,
    UNIQUE (dag_id, run_id)
);
CREATE INDEX dag_runs_by_state ON dag_runs (state, dag_id);
CREATE INDEX dag_runs_by_dag ON dag_runs (dag_id, run_after);

CREATE TABLE task_instances (
    id           TEXT    PRIMARY KEY,
    run_pk       INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    version_id   INTEGER NOT NULL,
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('none', 'scheduled', 'queued', 'running', 'success', 'failed',
                                                   'up_for_retry', 'up_for_reschedule', 'upstream_failed',
                                                   'skipped', 'removed')),
    try_number   INTEGER NOT NULL DEFAULT 0,
    max_tries    INTEGER NOT NULL,
    pool         TEXT    NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    queued_at    TEXT,
    start_date   TEXT,
    end_date     TEXT,
    next_try_at  TEXT,
    hostname     TEXT,
    worker       TEXT,
    pid          INTEGER,
    lease_until  TEXT,
    updated_at   TEXT    NOT NULL,
    UNIQUE (run_pk, task_id)
);
CREATE INDEX task_instances_by_state ON task_instances (state, priority);
CREATE INDEX task_instances_by_dag ON task_instances (dag_id, state);

CREATE TABLE task_tries (
    ti_id       TEXT    NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number  INTEGER NOT NULL,
    dag_id      TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('running', 'success', 'failed', 'up_for_retry', 'up_for_reschedule')),
    start_date  TEXT    NOT NULL,
    end_date    TEXT,
    hostname    TEXT,
    worker      TEXT,
    pid         INTEGER,
    exit_code   INTEGER,
    error       TEXT,
    log_path    TEXT    NOT NULL,
    PRIMARY KEY (ti_id, try_number)
);

CREATE TABLE import_errors (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    filename  TEXT    NOT NULL,
    line      INTEGER NOT NULL,
    col       INTEGER NOT NULL,
    message   TEXT    NOT NULL,
    timestamp TEXT    NOT NULL
);

CREATE TABLE pools (
    name        TEXT    PRIMARY KEY,
    slots       INTEGER NOT NULL CHECK (slots >= 0),
    description TEXT
);
INSERT INTO pools (name, slots, description) VALUES ('default', 128, 'Default pool');

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    dag_id  TEXT,
    run_id  TEXT,
    task_id TEXT,
    detail  TEXT
);

-- Dataset versions: each write of a dataset, and what produced it.
CREATE TABLE dataset_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset     TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    dag_id      TEXT,
    run_id      TEXT,
    task_id     TEXT,
    try_number  INTEGER,
    rows        INTEGER,
    path        TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (dataset, version)
);
