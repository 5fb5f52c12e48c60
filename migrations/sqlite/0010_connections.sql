-- Connections tasks name (extract queries, loads, SQL sensors) kept by weir:
-- URL-style parts, with the password and the extra JSON sealed
-- (XChaCha20-Poly1305 under the site's secret key), never stored in clear.
CREATE TABLE connections (
    conn_id     TEXT PRIMARY KEY,
    conn_type   TEXT NOT NULL,
    description TEXT,
    host        TEXT,
    schema_name TEXT,
    login       TEXT,
    password    TEXT,
    port        BIGINT,
    extra       TEXT,
    updated_at  TEXT NOT NULL
);
