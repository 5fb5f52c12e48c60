-- Queues, leases that name their claim, and worker lives that run elsewhere.

-- The queue a task instance waits in; only workers serving it claim it.
ALTER TABLE task_instances ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
-- The claim the current try's lease belongs to: reports, heartbeats and log
-- pieces must name it, so a worker whose lease lapsed cannot touch the next try.
ALTER TABLE task_instances ADD COLUMN lease_id TEXT;

-- What a worker life says of itself when it registers: its build, the queues
-- it serves (a JSON list; NULL: every queue), its slots, whether it talks to
-- weir over HTTP, and when it began to drain (stop claiming, finish what runs).
ALTER TABLE workers ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN queues TEXT;
ALTER TABLE workers ADD COLUMN slots BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN remote BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE workers ADD COLUMN draining_at TIMESTAMPTZ;

-- Logs of tries run by remote workers, pushed in pieces: the piece starting
-- at byte `pos` of the try's log. Any API server reads them back.
CREATE TABLE try_logs (
    ti_id      TEXT   NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number BIGINT NOT NULL,
    pos        BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    PRIMARY KEY (ti_id, try_number, pos)
);
