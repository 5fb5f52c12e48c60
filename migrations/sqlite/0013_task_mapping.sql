-- Dynamic task mapping: a task that expands over a list gets one task
-- instance per item, told apart by `map_index` (-1: the task's own instance,
-- which does the expansion). `map_item` is an item's JSON; `map_count` is how
-- many instances the expansion made (NULL before it, or for a task that does
-- not expand). A task instance is now unique per run, task and map index.
--
-- SQLite cannot change a table's UNIQUE constraint in place, so the table is
-- rebuilt inside the migration's one transaction, foreign keys on (they
-- cannot be switched off there): the tables that refer to it (tries, their
-- log pieces, the queue) are rebuilt too, referring to the new table, and
-- dropped before the old one, so dropping it cascades to nothing; renaming
-- the new tables into place keeps their references pointing at each other.

CREATE TABLE task_instances_mapped (
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
    queue        TEXT    NOT NULL DEFAULT 'default',
    lease_id     TEXT,
    map_index    INTEGER NOT NULL DEFAULT -1,
    map_item     TEXT,
    map_count    INTEGER,
    UNIQUE (run_pk, task_id, map_index)
);

INSERT INTO task_instances_mapped (id, run_pk, version_id, dag_id, run_id, task_id, state, try_number, max_tries,
                                   pool, priority, queued_at, start_date, end_date, next_try_at, hostname, worker,
                                   pid, lease_until, updated_at, queue, lease_id)
SELECT id, run_pk, version_id, dag_id, run_id, task_id, state, try_number, max_tries,
       pool, priority, queued_at, start_date, end_date, next_try_at, hostname, worker,
       pid, lease_until, updated_at, queue, lease_id
FROM task_instances;

CREATE TABLE task_tries_mapped (
    ti_id       TEXT    NOT NULL REFERENCES task_instances_mapped (id) ON DELETE CASCADE,
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
    output      TEXT,
    PRIMARY KEY (ti_id, try_number)
);
INSERT INTO task_tries_mapped (ti_id, try_number, dag_id, run_id, task_id, state, start_date, end_date,
                               hostname, worker, pid, exit_code, error, log_path, output)
SELECT ti_id, try_number, dag_id, run_id, task_id, state, start_date, end_date,
       hostname, worker, pid, exit_code, error, log_path, output
FROM task_tries;

CREATE TABLE try_logs_mapped (
    ti_id      TEXT   NOT NULL REFERENCES task_instances_mapped (id) ON DELETE CASCADE,
    try_number INTEGER NOT NULL,
    pos        INTEGER NOT NULL,
    data       BLOB  NOT NULL,
    PRIMARY KEY (ti_id, try_number, pos)
);
INSERT INTO try_logs_mapped (ti_id, try_number, pos, data)
SELECT ti_id, try_number, pos, data FROM try_logs;

CREATE TABLE task_queue_mapped (
    ti_id      TEXT    PRIMARY KEY REFERENCES task_instances_mapped (id) ON DELETE CASCADE,
    run_pk     INTEGER NOT NULL,
    dag_id     TEXT    NOT NULL,
    pool       TEXT    NOT NULL,
    queue      TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    queued_at  TEXT
);
INSERT INTO task_queue_mapped (ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at)
SELECT ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at FROM task_queue;

-- Children first: then the old task instances have nothing to cascade to.
DROP TABLE task_queue;
DROP TABLE try_logs;
DROP TABLE task_tries;
DROP TABLE task_instances;
ALTER TABLE task_instances_mapped RENAME TO task_instances;
ALTER TABLE task_tries_mapped RENAME TO task_tries;
ALTER TABLE try_logs_mapped RENAME TO try_logs;
ALTER TABLE task_queue_mapped RENAME TO task_queue;
CREATE INDEX task_instances_by_dag ON task_instances (dag_id);
CREATE INDEX task_queue_by_state ON task_queue (state, priority DESC, queued_at);
CREATE INDEX task_queue_by_run ON task_queue (run_pk);

CREATE TRIGGER task_queue_enters AFTER INSERT ON task_instances
WHEN NEW.state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')
BEGIN
    INSERT INTO task_queue (ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at)
    VALUES (NEW.id, NEW.run_pk, NEW.dag_id, NEW.pool, NEW.queue, NEW.priority, NEW.state, NEW.queued_at);
END;

CREATE TRIGGER task_queue_moves AFTER UPDATE OF state, queued_at ON task_instances
WHEN NEW.state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')
BEGIN
    INSERT INTO task_queue (ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at)
    VALUES (NEW.id, NEW.run_pk, NEW.dag_id, NEW.pool, NEW.queue, NEW.priority, NEW.state, NEW.queued_at)
    ON CONFLICT (ti_id) DO UPDATE SET state = excluded.state, queued_at = excluded.queued_at;
END;

CREATE TRIGGER task_queue_leaves AFTER UPDATE OF state ON task_instances
WHEN NEW.state NOT IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')
BEGIN
    DELETE FROM task_queue WHERE ti_id = NEW.id;
END;

-- A notification about a mapped instance names it.
ALTER TABLE notifications ADD COLUMN map_index INTEGER NOT NULL DEFAULT -1;

