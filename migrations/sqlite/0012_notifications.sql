-- Notifications (`notify:` on a DAG or a task), an outbox: a row is
-- written in the transaction of the state change that fires it (or by the
-- timer, for a missed deadline), then delivered, retried with backoff and
-- recorded (sent, or failed with why). `key` makes each one once.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,
    run_pk          BIGINT NOT NULL,
    task_id         TEXT,
    try_number      BIGINT,
    event           TEXT NOT NULL,
    rule            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_by_run ON notifications (run_pk, id);
