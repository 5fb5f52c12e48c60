-- Work in flight gets a small table of its own, so that a task instance's
-- state changes no longer touch an index of task_instances: its updates stay
-- on their page (HOT) and cost the same however large runs and history grow.
-- A row is here while its task instance is scheduled, queued, running or
-- waiting for a retry or a poke, and leaves when it ends; a trigger keeps it
-- so, whatever statement changes the state.

DROP INDEX task_instances_by_state;
DROP INDEX task_instances_by_dag;
CREATE INDEX task_instances_by_dag ON task_instances (dag_id);
-- Room on each page for a row's next versions.
ALTER TABLE task_instances SET (fillfactor = 70);

CREATE TABLE task_queue (
    ti_id      TEXT        PRIMARY KEY REFERENCES task_instances (id) ON DELETE CASCADE,
    run_pk     BIGINT      NOT NULL,
    dag_id     TEXT        NOT NULL,
    pool       TEXT        NOT NULL,
    queue      TEXT        NOT NULL,
    priority   BIGINT      NOT NULL,
    state      TEXT        NOT NULL,
    queued_at  TIMESTAMPTZ
);
CREATE INDEX task_queue_by_state ON task_queue (state, priority DESC, queued_at);
CREATE INDEX task_queue_by_run ON task_queue (run_pk);

CREATE FUNCTION weir_task_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule') THEN
        INSERT INTO task_queue (ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at)
        VALUES (NEW.id, NEW.run_pk, NEW.dag_id, NEW.pool, NEW.queue, NEW.priority, NEW.state, NEW.queued_at)
        ON CONFLICT (ti_id) DO UPDATE SET state = EXCLUDED.state, queued_at = EXCLUDED.queued_at;
    ELSIF TG_OP = 'UPDATE' AND OLD.state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule') THEN
        DELETE FROM task_queue WHERE ti_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_queue_follows AFTER INSERT OR UPDATE OF state, queued_at ON task_instances
    FOR EACH ROW EXECUTE FUNCTION weir_task_queue();

INSERT INTO task_queue (ti_id, run_pk, dag_id, pool, queue, priority, state, queued_at)
SELECT id, run_pk, dag_id, pool, queue, priority, state, queued_at FROM task_instances
WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule');
