-- Variables templates read as `var.value.<key>` / `var.json.<key>`: a key,
-- its value as text (JSON values are kept as their JSON text), a note.
CREATE TABLE variables (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    description TEXT,
    updated_at  TEXT NOT NULL
);
