-- Access: users (argon2 password hashes), API tokens (stored only as hashes),
-- backfills requested through the API, and server settings.

CREATE TABLE users (
    username       TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    description   TEXT,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'worker')),
    secret_hash   TEXT NOT NULL UNIQUE,
    created_by    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE backfills (
    id                  BIGSERIAL PRIMARY KEY,
    dag_id              TEXT    NOT NULL,
    from_date TIMESTAMPTZ NOT NULL,
    to_date TIMESTAMPTZ NOT NULL,
    dag_run_conf        TEXT    NOT NULL DEFAULT '{}',
    reprocess_behavior  TEXT    NOT NULL CHECK (reprocess_behavior IN ('none', 'failed', 'completed')),
    max_active_runs     BIGINT  NOT NULL,
    is_paused           BOOLEAN NOT NULL DEFAULT FALSE,
    created_by          TEXT    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE INDEX audit_log_by_dag ON audit_log (dag_id, id);
