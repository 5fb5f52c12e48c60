-- Datasets as Airflow's assets: a lasting integer id for every dataset a
-- DAG names (written, read or scheduled on), and the updates recorded from
-- outside weir (`POST /api/v2/assets/events`), which trigger the DAGs
-- scheduled on the dataset like a new version does.
CREATE TABLE assets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE TABLE asset_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id    BIGINT NOT NULL REFERENCES assets (id),
    extra       TEXT,
    actor       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX asset_events_by_asset ON asset_events (asset_id, id);
