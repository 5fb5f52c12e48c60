-- Dynamic task mapping: a task that expands over a list gets one task
-- instance per item, told apart by `map_index` (-1: the task's own instance,
-- which does the expansion). `map_item` is an item's JSON; `map_count` is how
-- many instances the expansion made (NULL before it, or for a task that does
-- not expand). A task instance is now unique per run, task and map index.

ALTER TABLE task_instances ADD COLUMN map_index BIGINT NOT NULL DEFAULT -1;
ALTER TABLE task_instances ADD COLUMN map_item TEXT;
ALTER TABLE task_instances ADD COLUMN map_count BIGINT;
ALTER TABLE task_instances DROP CONSTRAINT task_instances_run_pk_task_id_key;
ALTER TABLE task_instances ADD CONSTRAINT task_instances_run_pk_task_id_map_index_key UNIQUE (run_pk, task_id, map_index);

-- A notification about a mapped instance names it.
ALTER TABLE notifications ADD COLUMN map_index BIGINT NOT NULL DEFAULT -1;
