-- Every life of a worker process: a name unique to that start, where it
-- runs, how to tell whether that very process still exists (pid and the
-- kernel's start time of it), its last heartbeat, and whether it is active,
-- stopped (it said so) or lost (another process found it gone).
CREATE TABLE workers (
    name          TEXT   PRIMARY KEY,
    hostname      TEXT   NOT NULL,
    pid           BIGINT NOT NULL,
    process_token TEXT   NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    heartbeat_at  TIMESTAMPTZ NOT NULL,
    state         TEXT   NOT NULL CHECK (state IN ('active', 'stopped', 'lost')),
    stopped_at    TIMESTAMPTZ
);
CREATE INDEX workers_by_host ON workers (hostname, state);
