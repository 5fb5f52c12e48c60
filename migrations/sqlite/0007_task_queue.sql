-- Work in flight gets a small table of its own (see the PostgreSQL
-- migration: there it keeps task_instances' updates on their page). A row
-- is here while its task instance is scheduled, queued, running or waiting
-- for a retry or a poke, and leaves when it ends; triggers keep it so.

DROP INDEX task_instances_by_state;
DROP INDEX task_instances_by_dag;
CREATE INDEX task_instances_by_dag ON task_instances (dag_id);

CREATE TABLE task_queue (
    ti_id      TEXT    PRIMARY KEY REFERENCES task_instances (id) ON DELETE CASCADE,
    run_pk     INTEGER NOT NULL,
    dag_id     TEXT    NOT NULL,
    pool       TEXT    NOT NULL,
    queue      TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    queued_at  TEXT
);
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

INSERT INTO task_queue (ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at)
SELECT id, run_pk, dag_id, pool, queue, priority, state, queued_at FROM task_instances
WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule');
