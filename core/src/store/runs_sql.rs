//! The SQL of [`super::RunStore`]: creating runs and reading runs, task
//! instances and tries, with the filters the API and CLI use.

/// Implements [`super::RunStore`] for `$store` (see `impl_store!`; `$db` is the sqlx database).
macro_rules! impl_run_store {
    ($store:ident, $db:ty, duration = $duration:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::RunStore for $store {
            async fn create_run(&self, run: &$crate::store::NewRun) -> $crate::store::Result<$crate::store::RunRecord> {
                let mut tx = self.tx().await?;
                let inserted: Result<$crate::store::RunRecord, sqlx::Error> = sqlx::query_as(
                    "INSERT INTO dag_runs (dag_id, run_id, version_id, run_type, state, logical_date, \
                       data_interval_start, data_interval_end, run_after, conf, note, triggered_by, queued_at, unfinished, \
                       trigger_versions) \
                     VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *",
                )
                .bind(&run.dag_id)
                .bind(&run.run_id)
                .bind(run.version_id)
                .bind(run.run_type.as_str())
                .bind(run.logical_date)
                .bind(run.data_interval_start)
                .bind(run.data_interval_end)
                .bind(run.run_after)
                .bind(&run.conf)
                .bind(&run.note)
                .bind(&run.triggered_by)
                .bind(run.queued_at)
                .bind(i64::try_from(run.tasks.len()).unwrap_or(i64::MAX))
                .bind(&run.trigger_versions)
                .fetch_one(&mut *tx)
                .await;
                let record = match inserted {
                    Ok(r) => r,
                    Err(e) if $crate::store::sql::is_unique_violation(&e) => {
                        return Err($crate::store::Error::Conflict(format!(
                            "DAG `{}` already has a run `{}`",
                            run.dag_id, run.run_id
                        )));
                    }
                    Err(e) => return Err(e.into()),
                };
                for chunk in run.tasks.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO task_instances (id, run_pk, version_id, dag_id, run_id, task_id, state, \
                           try_number, max_tries, pool, priority, updated_at, queue) ",
                    );
                    qb.push_values(chunk, |mut b, t| {
                        b.push_bind(uuid::Uuid::new_v4().to_string())
                            .push_bind(record.id)
                            .push_bind(run.version_id)
                            .push_bind(&run.dag_id)
                            .push_bind(&run.run_id)
                            .push_bind(&t.task_id)
                            .push_bind("none")
                            .push_bind(0_i64)
                            .push_bind(t.max_tries)
                            .push_bind(&t.pool)
                            .push_bind(t.priority)
                            .push_bind(run.queued_at)
                            .push_bind(&t.queue);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                // A run of many tasks changes the table's statistics at once;
                // refreshed, they keep the planner on the (run, task) index
                // when a finishing try reads a few of the run's tasks.
                if run.tasks.len() >= $store::BULK_RUN && !$store::REFRESH_STATS.is_empty() {
                    sqlx::query($store::REFRESH_STATS).execute(self.writer()).await?;
                }
                Ok(record)
            }

            async fn list_runs(
                &self,
                filter: &$crate::store::RunFilter,
            ) -> $crate::store::Result<(Vec<$crate::store::RunRecord>, i64)> {
                fn where_clause(qb: &mut sqlx::QueryBuilder<$db>, f: &$crate::store::RunFilter) {
                    qb.push(" WHERE 1 = 1");
                    if let Some(d) = &f.dag_id {
                        qb.push(" AND dag_id = ").push_bind(d.as_str());
                    }
                    push_in(qb, "dag_id", f.dag_ids.iter().cloned());
                    if let Some(p) = &f.run_id_pattern {
                        push_pattern(qb, "run_id", p);
                    }
                    push_in(qb, "state", f.states.iter().map(|s| s.as_str().to_owned()));
                    push_in(qb, "run_type", f.run_types.iter().map(|s| s.as_str().to_owned()));
                    for r in &f.ranges {
                        push_range(qb, r.column.column(), r.from, r.to);
                    }
                    for r in &f.strict_ranges {
                        push_bounds(qb, r.column.column(), (">", r.from), ("<", r.to));
                    }
                    push_duration(qb, &f.duration);
                    if let Some(c) = &f.conf_contains {
                        qb.push(" AND LOWER(conf) LIKE ").push_bind(format!("%{}%", c.to_lowercase()));
                    }
                }
                let mut count = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM dag_runs");
                where_clause(&mut count, filter);
                let total: i64 = count.build_query_scalar().fetch_one(self.reader()).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM dag_runs");
                where_clause(&mut qb, filter);
                match filter.order {
                    Some((key, desc)) => {
                        let dir = if desc { " DESC" } else { "" };
                        qb.push(format_args!(" ORDER BY {}{dir}, id{dir}", key.column()));
                    }
                    None => {
                        qb.push(" ORDER BY run_after, id");
                    }
                }
                qb.push(" LIMIT ").push_bind(filter.limit.unwrap_or(i64::MAX).max(0));
                qb.push(" OFFSET ").push_bind(filter.offset.unwrap_or(0).max(0));
                let runs = qb.build_query_as().fetch_all(self.reader()).await?;
                Ok((runs, total))
            }

            async fn get_run(&self, dag_id: &str, run_id: &str) -> $crate::store::Result<$crate::store::RunRecord> {
                sqlx::query_as("SELECT * FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
                    .bind(dag_id)
                    .bind(run_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("run `{run_id}` of DAG `{dag_id}`")))
            }

            async fn get_run_by_pk(&self, run_pk: i64) -> $crate::store::Result<$crate::store::RunRecord> {
                sqlx::query_as("SELECT * FROM dag_runs WHERE id = $1")
                    .bind(run_pk)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("run {run_pk}")))
            }

            async fn set_run_note(
                &self,
                run_pk: i64,
                note: &str,
                actor: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::RunRecord> {
                let mut tx = self.tx().await?;
                let run: $crate::store::RunRecord = sqlx::query_as("UPDATE dag_runs SET note = $1 WHERE id = $2 RETURNING *")
                    .bind(note)
                    .bind(run_pk)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("run {run_pk}")))?;
                insert_audit(&mut *tx, &$crate::store::AuditEntry {
                    at,
                    actor: actor.to_owned(),
                    action: $crate::store::AuditAction::Note,
                    dag_id: Some(run.dag_id.clone()),
                    run_id: Some(run.run_id.clone()),
                    task_id: None,
                    detail: Some(serde_json::json!({"note": note}).to_string()),
                })
                .await?;
                tx.commit().await?;
                Ok(run)
            }

            async fn last_scheduled_run(&self, dag_id: &str) -> $crate::store::Result<Option<$crate::store::RunRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM dag_runs WHERE dag_id = $1 AND run_type IN ('scheduled', 'backfill') \
                     AND logical_date IS NOT NULL ORDER BY logical_date DESC LIMIT 1",
                )
                .bind(dag_id)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn dags_with_queued_runs(&self) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT DISTINCT dag_id FROM dag_runs WHERE state = 'queued' ORDER BY dag_id")
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn count_active_runs(&self, dag_id: &str) -> $crate::store::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM dag_runs WHERE dag_id = $1 AND state IN ('queued', 'running')")
                    .bind(dag_id)
                    .fetch_one(self.reader())
                    .await?)
            }

            async fn count_running_runs(&self, dag_id: &str) -> $crate::store::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM dag_runs WHERE dag_id = $1 AND state = 'running'")
                    .bind(dag_id)
                    .fetch_one(self.reader())
                    .await?)
            }

            async fn run_counts_by_dag(&self) -> $crate::store::Result<Vec<(String, $crate::state::RunState, i64)>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT dag_id, state, COUNT(*) FROM dag_runs GROUP BY dag_id, state ORDER BY dag_id, state",
                )
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(dag_id, state, n)| Ok((dag_id, state.parse().map_err($crate::store::Error::Corrupt)?, n)))
                    .collect()
            }

            async fn list_task_instances(&self, run_pk: i64) -> $crate::store::Result<Vec<$crate::store::TaskInstanceRecord>> {
                let sql = format!(
                    "SELECT {} FROM task_instances WHERE run_pk = $1 ORDER BY start_date IS NULL, start_date, task_id, map_index",
                    $crate::store::sql::TI_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(run_pk).fetch_all(self.reader()).await?)
            }

            async fn list_tries(&self, ti_id: &str) -> $crate::store::Result<Vec<$crate::store::TryRecord>> {
                Ok(sqlx::query_as("SELECT * FROM task_tries WHERE ti_id = $1 ORDER BY try_number")
                    .bind(ti_id)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn run_tries(&self, run_pk: i64) -> $crate::store::Result<Vec<$crate::store::TryRecord>> {
                Ok(sqlx::query_as(
                    "SELECT t.* FROM task_tries t JOIN task_instances ti ON ti.id = t.ti_id \
                     WHERE ti.run_pk = $1 ORDER BY t.start_date, t.task_id, t.try_number",
                )
                .bind(run_pk)
                .fetch_all(self.reader())
                .await?)
            }

            async fn task_outputs(
                &self,
                run_pk: i64,
                task_ids: &[String],
            ) -> $crate::store::Result<Vec<(String, i64, Option<String>)>> {
                if task_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT ti.task_id, ti.map_index, t.output FROM task_instances ti \
                     LEFT JOIN task_tries t ON t.ti_id = ti.id AND t.try_number = ti.try_number \
                     WHERE ti.state <> 'removed' AND (ti.map_index >= 0 OR \
                       (COALESCE(ti.map_count, 0) = 0 AND t.output IS NOT NULL)) AND ti.run_pk = ",
                );
                qb.push_bind(run_pk);
                push_in(&mut qb, "ti.task_id", task_ids.iter().cloned());
                qb.push(" ORDER BY ti.task_id, ti.map_index");
                Ok(qb.build_query_as().fetch_all(self.reader()).await?)
            }

            async fn find_task_instances(
                &self,
                filter: &$crate::store::TaskFilter,
            ) -> $crate::store::Result<(Vec<$crate::store::TaskInstanceRecord>, i64)> {
                fn where_clause(qb: &mut sqlx::QueryBuilder<$db>, f: &$crate::store::TaskFilter) {
                    qb.push(" WHERE 1 = 1");
                    if let Some(d) = &f.dag_id {
                        qb.push(" AND dag_id = ").push_bind(d.clone());
                    }
                    if let Some(r) = &f.run_id {
                        qb.push(" AND run_id = ").push_bind(r.clone());
                    }
                    push_in(qb, "task_id", f.task_ids.iter().cloned());
                    push_in(qb, "state", f.states.iter().map(|s| s.as_str().to_owned()));
                    // Work in flight is found through its small table, not by
                    // reading every task instance ever made.
                    if !f.states.is_empty() && f.states.iter().all(|s| s.is_in_flight()) {
                        qb.push(" AND id IN (SELECT ti_id FROM task_queue WHERE 1 = 1");
                        push_in(qb, "state", f.states.iter().map(|s| s.as_str().to_owned()));
                        qb.push(")");
                    }
                    push_in(qb, "pool", f.pools.iter().cloned());
                    if f.mapped_only {
                        qb.push(" AND map_index >= 0");
                    }
                    if !f.map_indexes.is_empty() {
                        qb.push(" AND map_index IN (");
                        let mut sep = qb.separated(", ");
                        for m in &f.map_indexes {
                            sep.push_bind(*m);
                        }
                        qb.push(")");
                    }
                    push_in(qb, "queue", f.queues.iter().cloned());
                    push_in(qb, "dag_id", f.dag_ids.iter().cloned());
                    push_in(qb, "run_id", f.run_ids.iter().cloned());
                    for r in &f.ranges {
                        push_range(qb, r.column.column(), r.from, r.to);
                    }
                    for r in &f.strict_ranges {
                        push_bounds(qb, r.column.column(), (">", r.from), ("<", r.to));
                    }
                    push_duration(qb, &f.duration);
                    if let Some(p) = &f.task_id_pattern {
                        push_pattern(qb, "task_id", p);
                    }
                    if let Some(p) = &f.run_id_pattern {
                        push_pattern(qb, "run_id", p);
                    }
                    if f.with_output {
                        qb.push(
                            " AND EXISTS (SELECT 1 FROM task_tries t WHERE t.ti_id = task_instances.id \
                             AND t.try_number = task_instances.try_number AND t.output IS NOT NULL)",
                        );
                    }
                    let by_run = f.run_ranges.iter().chain(&f.run_strict_ranges).any(|r| r.from.is_some() || r.to.is_some());
                    if by_run {
                        qb.push(" AND run_pk IN (SELECT id FROM dag_runs WHERE 1 = 1");
                        for r in &f.run_ranges {
                            push_range(qb, r.column.column(), r.from, r.to);
                        }
                        for r in &f.run_strict_ranges {
                            push_bounds(qb, r.column.column(), (">", r.from), ("<", r.to));
                        }
                        qb.push(")");
                    }
                }
                let mut count = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM task_instances");
                where_clause(&mut count, filter);
                let total: i64 = count.build_query_scalar().fetch_one(self.reader()).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("SELECT {} FROM task_instances", $crate::store::sql::TI_COLUMNS));
                where_clause(&mut qb, filter);
                match filter.order {
                    Some((key, desc)) => {
                        let dir = if desc { " DESC" } else { "" };
                        qb.push(format_args!(" ORDER BY {}{dir}, run_pk{dir}, task_id{dir}, map_index{dir}", key.column()));
                    }
                    None => {
                        qb.push(" ORDER BY run_pk, start_date IS NULL, start_date, task_id, map_index");
                    }
                }
                qb.push(" LIMIT ").push_bind(filter.limit.unwrap_or(i64::MAX).max(0));
                qb.push(" OFFSET ").push_bind(filter.offset.unwrap_or(0).max(0));
                let tis = qb.build_query_as().fetch_all(self.reader()).await?;
                Ok((tis, total))
            }

            async fn get_mapped_instance(
                &self,
                dag_id: &str,
                run_id: &str,
                task_id: &str,
                map_index: i64,
            ) -> $crate::store::Result<$crate::store::TaskInstanceRecord> {
                let sql = format!(
                    "SELECT {} FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4",
                    $crate::store::sql::TI_COLUMNS
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(dag_id)
                    .bind(run_id)
                    .bind(task_id)
                    .bind(map_index)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| {
                        let which = if map_index < 0 { String::new() } else { format!(" (map index {map_index})") };
                        $crate::store::Error::NotFound(format!("task `{task_id}`{which} of run `{run_id}` of DAG `{dag_id}`"))
                    })
            }

            async fn get_task_instance_by_id(&self, ti_id: &str) -> $crate::store::Result<$crate::store::TaskInstanceRecord> {
                let sql = format!("SELECT {} FROM task_instances WHERE id = $1", $crate::store::sql::TI_COLUMNS);
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(ti_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("task instance {ti_id}")))
            }

            async fn grid(&self, runs: &$crate::store::GridRuns) -> $crate::store::Result<$crate::store::GridPage> {
                use sqlx::Row;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT r.*, ti.task_id AS cell_task, ti.state AS cell_state, ti.try_number AS cell_try, \
                       ti.map_index AS cell_map_index \
                     FROM (SELECT *, COUNT(*) OVER () AS grid_total FROM dag_runs WHERE ",
                );
                match runs {
                    $crate::store::GridRuns::Page { dag_id, limit, offset } => {
                        qb.push("dag_id = ").push_bind(dag_id.clone())
                            .push(" ORDER BY run_after DESC, id DESC LIMIT ").push_bind(*limit)
                            .push(" OFFSET ").push_bind(*offset);
                    }
                    $crate::store::GridRuns::Keys(keys) if keys.is_empty() => {
                        return Ok($crate::store::GridPage::default());
                    }
                    $crate::store::GridRuns::Keys(keys) => {
                        qb.push("id IN (");
                        let mut list = qb.separated(", ");
                        for k in keys {
                            list.push_bind(*k);
                        }
                        qb.push(")");
                    }
                }
                qb.push(") r LEFT JOIN task_instances ti ON ti.run_pk = r.id ORDER BY r.run_after, r.id, ti.task_id, ti.map_index");
                let rows = qb.build().fetch_all(self.reader()).await?;
                let mut page = $crate::store::GridPage::default();
                for row in &rows {
                    page.total_runs = row.try_get("grid_total")?;
                    let run_pk: i64 = row.try_get("id")?;
                    if page.runs.last().is_none_or(|r: &$crate::store::RunRecord| r.id != run_pk) {
                        page.runs.push(sqlx::FromRow::from_row(row)?);
                    }
                    let task: Option<String> = row.try_get("cell_task")?;
                    if let Some(task_id) = task {
                        let state: String = row.try_get("cell_state")?;
                        let state: $crate::state::TaskState = $crate::store::from_row::convert(state, "cell_state")?;
                        let try_number: i64 = row.try_get("cell_try")?;
                        let map_index: i64 = row.try_get("cell_map_index")?;
                        // A mapped task's cell sums up its mapped instances (they follow its own).
                        match page.cells.last_mut() {
                            Some(c) if map_index >= 0 && c.run_pk == run_pk && c.task_id == task_id => {
                                let first = map_index == 0 || c.mapped == 0;
                                let states = if first { vec![state] } else { vec![c.state, state] };
                                c.state = $crate::state::TaskState::summary(states).unwrap_or(c.state);
                                c.try_number = if first { try_number } else { c.try_number.max(try_number) };
                                c.mapped += 1;
                            }
                            _ => page.cells.push($crate::store::GridCell { run_pk, task_id, state, try_number, mapped: 0 }),
                        }
                    }
                }
                Ok(page)
            }

            async fn state_counts(&self) -> $crate::store::Result<$crate::store::StateCounts> {
                let runs: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM dag_runs GROUP BY state ORDER BY state")
                    .fetch_all(self.reader())
                    .await?;
                let task_instances: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM task_instances GROUP BY state ORDER BY state")
                    .fetch_all(self.reader())
                    .await?;
                let tries: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM task_tries GROUP BY state ORDER BY state")
                    .fetch_all(self.reader())
                    .await?;
                Ok($crate::store::StateCounts {
                    runs: $crate::store::sql::parsed(runs)?,
                    task_instances: $crate::store::sql::parsed(task_instances)?,
                    tries: $crate::store::sql::parsed(tries)?,
                })
            }

            async fn running_runs_started_before(
                &self,
                dag_id: &str,
                started_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<$crate::store::RunRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dag_runs WHERE dag_id = $1 AND state = 'running' AND start_date < $2")
                    .bind(dag_id)
                    .bind(started_before)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn last_run_of_type(
                &self,
                dag_id: &str,
                run_type: $crate::state::RunType,
            ) -> $crate::store::Result<Option<$crate::store::RunRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dag_runs WHERE dag_id = $1 AND run_type = $2 ORDER BY id DESC LIMIT 1")
                    .bind(dag_id)
                    .bind(run_type.as_str())
                    .fetch_optional(self.reader())
                    .await?)
            }
        }

        /// Appends ` AND column IN (…)` with one bound value each, when `values` is not empty.
        /// Appends an Airflow `*_pattern` match: a case-insensitive substring
        /// (`%` and `_` wildcards as in SQL `LIKE`), `|` between alternatives.
        fn push_pattern(qb: &mut sqlx::QueryBuilder<$db>, column: &'static str, pattern: &str) {
            qb.push(" AND (1 = 0");
            for alt in pattern.split('|').filter(|a| !a.is_empty()) {
                qb.push(format_args!(" OR LOWER({column}) LIKE "))
                    .push_bind(format!("%{}%", alt.to_lowercase()));
            }
            qb.push(")");
        }

        fn push_in(qb: &mut sqlx::QueryBuilder<$db>, column: &'static str, values: impl Iterator<Item = String>) {
            let values: Vec<String> = values.collect();
            if values.is_empty() {
                return;
            }
            qb.push(format_args!(" AND {column} IN ("));
            let mut sep = qb.separated(", ");
            for v in values {
                sep.push_bind(v);
            }
            qb.push(")");
        }

        /// Appends ` AND column >= from AND column <= to` for the ends given.
        fn push_range(
            qb: &mut sqlx::QueryBuilder<$db>,
            column: &'static str,
            from: Option<chrono::DateTime<chrono::Utc>>,
            to: Option<chrono::DateTime<chrono::Utc>>,
        ) {
            push_bounds(qb, column, (">=", from), ("<=", to));
        }

        /// Appends the bounds of a duration filter on `end_date - start_date`.
        fn push_duration(qb: &mut sqlx::QueryBuilder<$db>, d: &$crate::store::DurationRange) {
            let bounds = [(">=", d.gte), (">", d.gt), ("<=", d.lte), ("<", d.lt)];
            if bounds.iter().all(|(_, b)| b.is_none()) {
                return;
            }
            qb.push(" AND end_date IS NOT NULL AND start_date IS NOT NULL");
            for (op, bound) in bounds {
                if let Some(seconds) = bound {
                    qb.push(format_args!(" AND {} {op} ", $duration)).push_bind(seconds);
                }
            }
        }

        /// Appends ` AND column <op> bound` for each bound given.
        fn push_bounds(
            qb: &mut sqlx::QueryBuilder<$db>,
            column: &'static str,
            lower: (&'static str, Option<chrono::DateTime<chrono::Utc>>),
            upper: (&'static str, Option<chrono::DateTime<chrono::Utc>>),
        ) {
            for (op, bound) in [lower, upper] {
                if let Some(at) = bound {
                    qb.push(format_args!(" AND {column} {op} ")).push_bind(at);
                }
            }
        }
    };
}

pub(crate) use impl_run_store;
