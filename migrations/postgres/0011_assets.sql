-- Datasets as Airflow's assets: a lasting integer id for every dataset a
-- DAG names (written, read or scheduled on), and the updates recorded from
-- outside weir (`POST /api/v2/assets/events`), which trigger the DAGs
-- scheduled on the dataset like a new version does.
CREATE TABLE assets (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE asset_events (
    id          BIGSERIAL PRIMARY KEY,
    asset_id    BIGINT NOT NULL REFERENCES assets (id),
    extra       TEXT,
    actor       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX asset_events_by_asset ON asset_events (asset_id, id);
