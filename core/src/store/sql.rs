//! The SQL of the store, written once and instantiated for each backend by
//! [`impl_store!`]. SQLite and PostgreSQL share every statement (both take
//! `$N` placeholders, `RETURNING` and `ON CONFLICT`); the only differences are
//! passed in: row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) and the
//! dispatch lock (an advisory lock), which SQLite does not need because its
//! write transactions are `BEGIN IMMEDIATE`; and how a JSON array parameter
//! becomes a list of keys (one prepared statement whatever its length), in the
//! form each planner turns into index lookups.

/// Columns of `task_instances` in [`super::TaskInstanceRecord`] order.
pub(super) const TI_COLUMNS: &str = "id, run_pk, dag_id, run_id, task_id, state, try_number, max_tries, pool, priority, \
     queued_at, start_date, end_date, next_try_at, hostname, worker, pid, lease_until, updated_at";

/// Advisory lock keys: one dispatcher at a time (slot counts stay true).
pub(super) const DISPATCH_LOCK: i64 = 7_254_001;
/// One DAG folder sync at a time (versions are numbered once).
pub(super) const SYNC_LOCK: i64 = 7_254_002;
/// One dataset version numbered at a time.
pub(super) const DATASET_LOCK: i64 = 7_254_003;

/// Whether a database error is a unique-constraint violation.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Stored state names with their counts, read back as states.
pub(super) fn parsed<S: std::str::FromStr<Err = String>>(
    rows: Vec<(String, i64)>,
) -> super::Result<Vec<(S, i64)>> {
    rows.into_iter()
        .map(|(name, n)| Ok((name.parse().map_err(super::Error::Corrupt)?, n)))
        .collect()
}

/// Implements [`super::Store`] for `$store`, which must have `tx()` (a write
/// transaction), `reader()` and `writer()` (pools) and `run_migrations()`.
macro_rules! impl_store {
    (
        $store:ident,
        $db:ty,
        for_update = $for_update:literal,
        skip_locked = $skip_locked:literal,
        advisory_lock = $advisory_lock:literal,
        in_json = ($in_json_open:literal, $in_json_close:literal)
    ) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn migrate(&self) -> $crate::store::Result<()> {
                self.run_migrations().await
            }

            async fn sync_dags(
                &self,
                dags: &[$crate::store::DagSync],
                errors: &[$crate::store::ImportErrorRecord],
                paused_at_creation: bool,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                // Two processes loading the same new file must not both add its version.
                lock(&mut *tx, $crate::store::sql::SYNC_LOCK).await?;
                for d in dags {
                    let existing: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM dag_versions WHERE dag_id = $1 AND hash = $2")
                            .bind(&d.dag_id)
                            .bind(&d.hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let version_id = match existing {
                        Some(id) => id,
                        None => {
                            let next: i64 = sqlx::query_scalar(
                                "SELECT COALESCE(MAX(version_number), 0) + 1 FROM dag_versions WHERE dag_id = $1",
                            )
                            .bind(&d.dag_id)
                            .fetch_one(&mut *tx)
                            .await?;
                            sqlx::query_scalar(
                                "INSERT INTO dag_versions (dag_id, version_number, hash, definition, fileloc, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                            )
                            .bind(&d.dag_id)
                            .bind(next)
                            .bind(&d.hash)
                            .bind(&d.definition)
                            .bind(&d.fileloc)
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?
                        }
                    };
                    let tags = serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into());
                    sqlx::query(
                        "INSERT INTO dags (dag_id, fileloc, is_paused, is_stale, latest_version_id, schedule, timezone, \
                           description, owner, tags, max_active_runs, max_active_tasks, last_parsed_at) \
                         VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT (dag_id) DO UPDATE SET fileloc = excluded.fileloc, is_stale = FALSE, \
                           latest_version_id = excluded.latest_version_id, schedule = excluded.schedule, \
                           timezone = excluded.timezone, description = excluded.description, owner = excluded.owner, \
                           tags = excluded.tags, max_active_runs = excluded.max_active_runs, \
                           max_active_tasks = excluded.max_active_tasks, last_parsed_at = excluded.last_parsed_at",
                    )
                    .bind(&d.dag_id)
                    .bind(&d.fileloc)
                    .bind(d.paused || paused_at_creation)
                    .bind(version_id)
                    .bind(&d.schedule)
                    .bind(&d.timezone)
                    .bind(&d.description)
                    .bind(&d.owner)
                    .bind(tags)
                    .bind(d.max_active_runs)
                    .bind(d.max_active_tasks)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                // A DAG neither loaded now nor in a file with an import error is stale.
                let known: Vec<(String, String)> = sqlx::query_as("SELECT dag_id, fileloc FROM dags WHERE is_stale = FALSE")
                    .fetch_all(&mut *tx)
                    .await?;
                for (dag_id, fileloc) in known {
                    let loaded = dags.iter().any(|d| d.dag_id == dag_id);
                    let broken = errors.iter().any(|e| e.filename == fileloc);
                    if !loaded && !broken {
                        sqlx::query("UPDATE dags SET is_stale = TRUE WHERE dag_id = $1")
                            .bind(&dag_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                sqlx::query("DELETE FROM import_errors").execute(&mut *tx).await?;
                for e in errors {
                    sqlx::query(
                        "INSERT INTO import_errors (filename, line, col, message, timestamp) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&e.filename)
                    .bind(e.line)
                    .bind(e.col)
                    .bind(&e.message)
                    .bind(e.timestamp)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_dags(&self) -> $crate::store::Result<Vec<$crate::store::DagRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dags ORDER BY dag_id").fetch_all(self.reader()).await?)
            }

            async fn get_dag(&self, dag_id: &str) -> $crate::store::Result<$crate::store::DagRecord> {
                sqlx::query_as("SELECT * FROM dags WHERE dag_id = $1")
                    .bind(dag_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("DAG `{dag_id}`")))
            }

            async fn set_paused(
                &self,
                dag_id: &str,
                paused: bool,
                audit: Option<&$crate::store::AuditEntry>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                let done = sqlx::query("UPDATE dags SET is_paused = $1 WHERE dag_id = $2")
                    .bind(paused)
                    .bind(dag_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("DAG `{dag_id}`")));
                }
                if let Some(a) = audit {
                    insert_audit(&mut *tx, a).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_version(&self, version_id: i64) -> $crate::store::Result<$crate::store::VersionRecord> {
                sqlx::query_as("SELECT * FROM dag_versions WHERE id = $1")
                    .bind(version_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("DAG version {version_id}")))
            }

            async fn list_versions(&self, dag_id: &str) -> $crate::store::Result<Vec<$crate::store::VersionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dag_versions WHERE dag_id = $1 ORDER BY version_number DESC")
                    .bind(dag_id)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn list_import_errors(&self) -> $crate::store::Result<Vec<$crate::store::ImportErrorRecord>> {
                Ok(sqlx::query_as("SELECT * FROM import_errors ORDER BY filename, line, col")
                    .fetch_all(self.reader())
                    .await?)
            }

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
                           try_number, max_tries, pool, priority, updated_at) ",
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
                            .push_bind(run.queued_at);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(record)
            }

            async fn advance_run(
                &self,
                run_pk: i64,
                scope: &$crate::store::Scope,
                end: Option<&$crate::store::TryEnd>,
                audit: Option<&$crate::store::AuditEntry>,
                claim: Option<&$crate::store::ClaimRequest>,
                planner: $crate::store::Planner<'_>,
            ) -> $crate::store::Result<$crate::store::Advanced> {
                use $crate::state::TaskState;
                let mut tx = self.tx().await?;
                let plan = apply_in(&mut *tx, run_pk, scope, end, audit, planner).await?;
                let now = end.map(|e| e.at).unwrap_or_else(chrono::Utc::now);
                // New work, or a slot freed for work already waiting: queue it now.
                let dispatch = plan.tasks.iter().any(|c| c.to == TaskState::Scheduled || c.from == TaskState::Running);
                let queued = if dispatch { queue_in(&mut *tx, now).await? } else { 0 };
                // The worker whose try just ended takes its next task in the same transaction.
                let claims = match claim {
                    Some(req) => claim_in(&mut *tx, req).await?,
                    None => Vec::new(),
                };
                tx.commit().await?;
                Ok($crate::store::Advanced { plan, queued, claims })
            }

            async fn advance_runs(
                &self,
                items: &[$crate::store::Advance<'_>],
            ) -> $crate::store::Result<Vec<$crate::store::Result<$crate::store::Advanced>>> {
                use $crate::state::TaskState;
                use sqlx::Connection;
                let mut tx = self.tx().await?;
                // Lock runs in key order, so concurrent batches cannot deadlock.
                let mut order: Vec<usize> = (0..items.len()).collect();
                order.sort_by_key(|&i| items[i].run_pk);
                let mut results: Vec<Option<$crate::store::Result<$crate::store::Plan>>> = (0..items.len()).map(|_| None).collect();
                let mut now = chrono::Utc::now();
                for i in order {
                    let item = &items[i];
                    if let Some(e) = item.end {
                        now = now.max(e.at);
                    }
                    // Each item in a savepoint: one conflict does not undo the others.
                    let mut sp = (&mut *tx).begin().await?;
                    match apply_in(&mut *sp, item.run_pk, &item.scope, item.end, None, item.planner).await {
                        Ok(plan) => {
                            sp.commit().await?;
                            results[i] = Some(Ok(plan));
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            results[i] = Some(Err(e));
                        }
                    }
                }
                let dispatch = results.iter().flatten().flatten().any(|p| {
                    p.tasks.iter().any(|c| c.to == TaskState::Scheduled || c.from == TaskState::Running)
                });
                let queued = if dispatch { queue_in(&mut *tx, now).await? } else { 0 };
                // Claims for the slots that asked, one query per worker, handed out in order.
                let mut claims: Vec<Vec<$crate::store::Claim>> = (0..items.len()).map(|_| Vec::new()).collect();
                let mut groups: Vec<(&$crate::store::ClaimRequest, Vec<usize>)> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(req) = item.claim else { continue };
                    if !matches!(results[i], Some(Ok(_))) {
                        continue;
                    }
                    match groups.iter_mut().find(|(r, _)| r.worker == req.worker && r.hostname == req.hostname) {
                        Some((_, idx)) => idx.push(i),
                        None => groups.push((req, vec![i])),
                    }
                }
                for (req, idx) in groups {
                    let request = $crate::store::ClaimRequest {
                        limit: i64::try_from(idx.len()).unwrap_or(i64::MAX),
                        ..req.clone()
                    };
                    let got = claim_in(&mut *tx, &request).await?;
                    for (slot, claim) in idx.into_iter().zip(got) {
                        claims[slot].push(claim);
                    }
                }
                tx.commit().await?;
                Ok(results
                    .into_iter()
                    .zip(claims)
                    .map(|(r, c)| match r {
                        Some(Ok(plan)) => Ok($crate::store::Advanced { plan, queued, claims: c }),
                        Some(Err(e)) => Err(e),
                        None => Err($crate::store::Error::Plan("item was not applied".into())),
                    })
                    .collect())
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
                    push_in(qb, "state", f.states.iter().map(|s| s.as_str().to_owned()));
                    push_in(qb, "run_type", f.run_types.iter().map(|s| s.as_str().to_owned()));
                    for r in &f.ranges {
                        push_range(qb, r.column.column(), r.from, r.to);
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

            async fn list_task_instances(&self, run_pk: i64) -> $crate::store::Result<Vec<$crate::store::TaskInstanceRecord>> {
                let sql = format!(
                    "SELECT {} FROM task_instances WHERE run_pk = $1 ORDER BY start_date IS NULL, start_date, task_id",
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
                    push_in(qb, "pool", f.pools.iter().cloned());
                    for r in &f.ranges {
                        push_range(qb, r.column.column(), r.from, r.to);
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
                        qb.push(format_args!(" ORDER BY {}{dir}, run_pk{dir}, task_id{dir}", key.column()));
                    }
                    None => {
                        qb.push(" ORDER BY run_pk, start_date IS NULL, start_date, task_id");
                    }
                }
                qb.push(" LIMIT ").push_bind(filter.limit.unwrap_or(i64::MAX).max(0));
                qb.push(" OFFSET ").push_bind(filter.offset.unwrap_or(0).max(0));
                let tis = qb.build_query_as().fetch_all(self.reader()).await?;
                Ok((tis, total))
            }

            async fn get_task_instance(
                &self,
                dag_id: &str,
                run_id: &str,
                task_id: &str,
            ) -> $crate::store::Result<$crate::store::TaskInstanceRecord> {
                let sql = format!(
                    "SELECT {} FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND task_id = $3",
                    $crate::store::sql::TI_COLUMNS
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(dag_id)
                    .bind(run_id)
                    .bind(task_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("task `{task_id}` of run `{run_id}` of DAG `{dag_id}`")))
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

            async fn queue_scheduled(&self, now: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<usize> {
                let mut tx = self.tx().await?;
                let queued = queue_in(&mut *tx, now).await?;
                tx.commit().await?;
                Ok(queued)
            }

            async fn claim(&self, req: &$crate::store::ClaimRequest) -> $crate::store::Result<Vec<$crate::store::Claim>> {
                let mut tx = self.tx().await?;
                let claims = claim_in(&mut *tx, req).await?;
                tx.commit().await?;
                Ok(claims)
            }

            async fn heartbeat(
                &self,
                tries: &[$crate::store::HeldTry],
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<$crate::store::HeldTry>> {
                let mut lost = Vec::new();
                if tries.is_empty() {
                    return Ok(lost);
                }
                let mut tx = self.tx().await?;
                for held in tries {
                    let done = sqlx::query(
                        "UPDATE task_instances SET lease_until = $1 WHERE id = $2 AND try_number = $3 AND state = 'running'",
                    )
                    .bind(lease_until)
                    .bind(&held.ti_id)
                    .bind(held.try_number)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        lost.push(held.clone());
                    }
                }
                tx.commit().await?;
                Ok(lost)
            }

            async fn expired_leases(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<$crate::store::TryKey>> {
                Ok(sqlx::query_as(
                    "SELECT run_pk, id, try_number FROM task_instances WHERE state = 'running' AND lease_until < $1",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
            }

            async fn running_for_worker(&self, worker: &str) -> $crate::store::Result<Vec<$crate::store::TryKey>> {
                Ok(sqlx::query_as("SELECT run_pk, id, try_number FROM task_instances WHERE state = 'running' AND worker = $1")
                    .bind(worker)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn due_retries(&self, now: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<Vec<i64>> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT run_pk FROM task_instances \
                     WHERE state IN ('up_for_retry', 'up_for_reschedule') AND next_try_at <= $1",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
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

            async fn record_dataset_version(
                &self,
                v: &$crate::store::NewDatasetVersion,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::DatasetVersionRecord> {
                let mut tx = self.tx().await?;
                lock(&mut *tx, $crate::store::sql::DATASET_LOCK).await?;
                let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset = $1")
                    .bind(&v.dataset)
                    .fetch_one(&mut *tx)
                    .await?;
                let (dag, run, task, try_number) = match &v.producer {
                    Some(p) => (Some(p.dag_id.as_str()), Some(p.run_id.as_str()), Some(p.task_id.as_str()), Some(p.try_number)),
                    None => (None, None, None, None),
                };
                let rec = sqlx::query_as(
                    "INSERT INTO dataset_versions (dataset, version, dag_id, run_id, task_id, try_number, rows, path, created_at, \
                       schema, bytes, inputs) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
                )
                .bind(&v.dataset)
                .bind(next)
                .bind(dag)
                .bind(run)
                .bind(task)
                .bind(try_number)
                .bind(v.rows)
                .bind(&v.path)
                .bind(at)
                .bind(&v.schema)
                .bind(v.bytes)
                .bind(serde_json::json!(v.inputs).to_string())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(rec)
            }

            async fn latest_dataset_version(
                &self,
                dataset: &str,
            ) -> $crate::store::Result<Option<$crate::store::DatasetVersionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM dataset_versions WHERE dataset = $1 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1")
                    .bind(dataset)
                    .fetch_optional(self.reader())
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

            async fn list_pools(&self) -> $crate::store::Result<Vec<$crate::store::PoolRecord>> {
                Ok(sqlx::query_as(
                    "SELECT p.name, p.slots, p.description, \
                       (SELECT COUNT(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'running') AS running, \
                       (SELECT COUNT(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'queued') AS queued, \
                       (SELECT COUNT(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'scheduled') AS scheduled \
                     FROM pools p ORDER BY p.name",
                )
                .fetch_all(self.reader())
                .await?)
            }

            async fn upsert_pool(&self, name: &str, slots: i64, description: Option<&str>) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO pools (name, slots, description) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, \
                       description = COALESCE(excluded.description, pools.description)",
                )
                .bind(name)
                .bind(slots)
                .bind(description)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn delete_pool(&self, name: &str) -> $crate::store::Result<()> {
                if name == "default" {
                    return Err($crate::store::Error::Conflict("the default pool cannot be deleted".into()));
                }
                let done = sqlx::query("DELETE FROM pools WHERE name = $1").bind(name).execute(self.writer()).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("pool `{name}`")));
                }
                Ok(())
            }

            async fn audit(&self, entry: &$crate::store::AuditEntry) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                insert_audit(&mut *tx, entry).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                dag_id: Option<&str>,
                limit: i64,
                offset: i64,
            ) -> $crate::store::Result<(Vec<$crate::store::AuditRecord>, i64)> {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE ($1 IS NULL OR dag_id = $1)")
                    .bind(dag_id)
                    .fetch_one(self.reader())
                    .await?;
                let rows = sqlx::query_as(
                    "SELECT * FROM audit_log WHERE ($1 IS NULL OR dag_id = $1) ORDER BY id DESC LIMIT $2 OFFSET $3",
                )
                .bind(dag_id)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(self.reader())
                .await?;
                Ok((rows, total))
            }
        }

        /// Appends ` AND column IN (…)` with one bound value each, when `values` is not empty.
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
            if let Some(from) = from {
                qb.push(format_args!(" AND {column} >= ")).push_bind(from);
            }
            if let Some(to) = to {
                qb.push(format_args!(" AND {column} <= ")).push_bind(to);
            }
        }


        /// Moves `scheduled` task instances of running runs to `queued` within
        /// pool slots and `max_active_tasks`, inside the caller's transaction.
        async fn queue_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::Result<usize> {
            use std::collections::HashMap;
            // One dispatcher at a time, across processes: slot counts stay true.
            lock(&mut *conn, $crate::store::sql::DISPATCH_LOCK).await?;
            let candidates: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT ti.id, ti.dag_id, ti.pool FROM task_instances ti JOIN dag_runs r ON r.id = ti.run_pk \
                 WHERE ti.state = 'scheduled' AND r.state = 'running' \
                 ORDER BY ti.priority DESC, r.run_after, ti.updated_at LIMIT 5000",
            )
            .fetch_all(&mut *conn)
            .await?;
            if candidates.is_empty() {
                return Ok(0);
            }
            // Limits and current use of every pool ('p') and DAG ('d'), in one read.
            let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "SELECT 'p', name, slots, (SELECT COUNT(*) FROM task_instances t \
                   WHERE t.pool = pools.name AND t.state IN ('queued', 'running')) FROM pools \
                 UNION ALL \
                 SELECT 'd', dag_id, max_active_tasks, (SELECT COUNT(*) FROM task_instances t \
                   WHERE t.dag_id = dags.dag_id AND t.state IN ('queued', 'running')) FROM dags \
                   WHERE dag_id IN (SELECT DISTINCT dag_id FROM task_instances WHERE state = 'scheduled')",
            )
            .fetch_all(&mut *conn)
            .await?;
            let mut pools: HashMap<String, (i64, i64)> = HashMap::new();
            let mut dags: HashMap<String, (i64, i64)> = HashMap::new();
            for (kind, name, limit, used) in rows {
                let map = if kind == "p" { &mut pools } else { &mut dags };
                map.insert(name, (limit, used));
            }
            let mut chosen = Vec::new();
            for (id, dag_id, pool) in &candidates {
                let p = pools.entry(pool.clone()).or_insert((0, 0));
                if p.1 >= p.0 {
                    continue;
                }
                let d = dags.entry(dag_id.clone()).or_insert((i64::MAX, 0));
                if d.1 >= d.0 {
                    continue;
                }
                p.1 += 1;
                d.1 += 1;
                chosen.push(id.as_str());
            }
            if !chosen.is_empty() {
                let done = sqlx::query(concat!(
                    "UPDATE task_instances SET state = 'queued', queued_at = $1, updated_at = $1 \
                     WHERE state = 'scheduled' AND id ",
                    $in_json_open,
                    "$2",
                    $in_json_close
                ))
                .bind(now)
                .bind(sqlx::types::Json(&chosen))
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() as usize != chosen.len() {
                    return Err($crate::store::Error::Conflict("scheduled task instances changed while queueing".into()));
                }
            }
            Ok(chosen.len())
        }


        /// Claims up to `req.limit` queued task instances inside the caller's
        /// transaction: each starts a new try, recorded in the history.
        async fn claim_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            req: &$crate::store::ClaimRequest,
        ) -> $crate::store::Result<Vec<$crate::store::Claim>> {
                #[allow(clippy::type_complexity)]
                // The candidates are picked once, in a materialized CTE: as an
                // `IN (SELECT … LIMIT n)` subquery, PostgreSQL may re-run the
                // pick for every row it updates (a nested-loop semi join), and
                // each re-run skips the rows this statement already took and
                // picks the next: one claim of 1 could take every queued task.
                let rows: Vec<(String, i64, i64, String, String, String, i64, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(concat!(
                "WITH picked AS MATERIALIZED (SELECT id AS pick FROM task_instances WHERE state = 'queued' \
                   ORDER BY priority DESC, queued_at LIMIT $5 ",
                $skip_locked,
                ") UPDATE task_instances SET state = 'running', try_number = try_number + 1, \
               start_date = CASE WHEN queued_at > $1 THEN queued_at ELSE $1 END, \
                   end_date = NULL, next_try_at = NULL, hostname = $2, worker = $3, pid = NULL, lease_until = $4, \
                   updated_at = $1 \
                 WHERE state = 'queued' AND id IN (SELECT pick FROM picked) \
                 RETURNING id, run_pk, version_id, dag_id, run_id, task_id, try_number, start_date, queued_at"
            ))
            .bind(req.now)
            .bind(&req.hostname)
            .bind(&req.worker)
            .bind(req.lease_until)
            .bind(req.limit)
            .fetch_all(&mut *conn)
            .await?;
            let starts: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|r| r.7).collect();
            let claims: Vec<$crate::store::Claim> = rows
                .into_iter()
                .map(|(ti_id, run_pk, version_id, dag_id, run_id, task_id, try_number, started_at, queued_at)| {
                    let log_path = $crate::store::log_path(&dag_id, &run_id, &task_id, try_number);
                    $crate::store::Claim { ti_id, run_pk, dag_id, run_id, task_id, try_number, version_id, log_path, queued_at, started_at }
                })
                .collect();
            if !claims.is_empty() {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO task_tries (ti_id, try_number, dag_id, run_id, task_id, state, start_date, \
                       hostname, worker, log_path) ",
                );
                qb.push_values(claims.iter().zip(&starts), |mut b, (c, start)| {
                    b.push_bind(c.ti_id.clone())
                        .push_bind(c.try_number)
                        .push_bind(c.dag_id.clone())
                        .push_bind(c.run_id.clone())
                        .push_bind(c.task_id.clone())
                        .push_bind("running")
                        .push_bind(*start)
                        .push_bind(req.hostname.clone())
                        .push_bind(req.worker.clone())
                        .push_bind(c.log_path.clone());
                });
                qb.build().execute(&mut *conn).await?;
            }
            Ok(claims)
        }


        /// Applies one planner's plan to one run inside the caller's
        /// transaction (see [`super::Store::advance_run`]); returns the plan.
        async fn apply_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            run_pk: i64,
            scope: &$crate::store::Scope,
            end: Option<&$crate::store::TryEnd>,
            audit: Option<&$crate::store::AuditEntry>,
            planner: $crate::store::Planner<'_>,
        ) -> $crate::store::Result<$crate::store::Plan> {
            use $crate::state::TaskState;
                let run: $crate::store::RunRecord = sqlx::query_as(concat!("SELECT * FROM dag_runs WHERE id = $1 ", $for_update))
                .bind(run_pk)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| $crate::store::Error::NotFound(format!("run {run_pk}")))?;
            let mut scope = scope.clone();
            let mut rounds = 0;
            let (snapshot, plan) = loop {
                // One prepared statement whatever the number of tasks: the ids travel as a JSON array.
                let tasks: Vec<$crate::store::TaskStateRecord> = match &scope {
                    $crate::store::Scope::All => sqlx::query_as(
                        "SELECT id, task_id, state, try_number, max_tries, next_try_at FROM task_instances \
                         WHERE run_pk = $1",
                    )
                    .bind(run_pk)
                    .fetch_all(&mut *conn)
                    .await?,
                    $crate::store::Scope::Tasks(ids) => sqlx::query_as(concat!(
                        "SELECT id, task_id, state, try_number, max_tries, next_try_at FROM task_instances \
                         WHERE run_pk = $1 AND task_id ",
                        $in_json_open,
                        "$2",
                        $in_json_close
                    ))
                    .bind(run_pk)
                    .bind(sqlx::types::Json(ids))
                    .fetch_all(&mut *conn)
                    .await?,
                };
                let snapshot = $crate::store::RunSnapshot { run: run.clone(), tasks, unfinished: run.unfinished, failed: run.failed };
                match planner(&snapshot)? {
                    $crate::store::Planned::Done(plan) => break (snapshot, plan),
                    $crate::store::Planned::NeedTasks(more) => {
                        rounds += 1;
                        scope = match scope {
                            $crate::store::Scope::Tasks(mut ids) if rounds < 4 => {
                                ids.extend(more);
                                ids.sort();
                                ids.dedup();
                                $crate::store::Scope::Tasks(ids)
                            }
                            _ => $crate::store::Scope::All,
                        };
                    }
                }
            };
            let now = end.map(|e| e.at).unwrap_or_else(chrono::Utc::now);
            for c in &plan.tasks {
                if !c.from.can_move_to(c.to) {
                    return Err($crate::store::Error::IllegalTransition(format!(
                        "task `{}` cannot go from {} to {}",
                        c.task_id, c.from, c.to
                    )));
                }
                let reset = c.to == TaskState::None;
                let ends = c.to.is_finished() || matches!(c.to, TaskState::UpForRetry | TaskState::UpForReschedule);
                let done = sqlx::query(
                    "UPDATE task_instances SET state = $1, max_tries = COALESCE($2, max_tries), next_try_at = $3, \
                       start_date = CASE WHEN $4 THEN NULL WHEN $5 THEN COALESCE(start_date, $6) ELSE start_date END, \
                       end_date = CASE WHEN $4 THEN NULL WHEN $5 THEN $6 ELSE end_date END, \
                       queued_at = CASE WHEN $4 THEN NULL ELSE queued_at END, \
                       lease_until = CASE WHEN $4 OR $5 THEN NULL ELSE lease_until END, \
                       updated_at = $6 \
                     WHERE run_pk = $7 AND task_id = $8 AND state = $9 AND try_number = $10",
                )
                .bind(c.to.as_str())
                .bind(c.max_tries)
                .bind(c.next_try_at)
                .bind(reset)
                .bind(ends)
                .bind(now)
                .bind(run_pk)
                .bind(&c.task_id)
                .bind(c.from.as_str())
                .bind(c.try_number)
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() != 1 {
                    return Err($crate::store::Error::Conflict(format!(
                        "task `{}` of run {} is no longer {} (try {})",
                        c.task_id, run_pk, c.from, c.try_number
                    )));
                }
                // A running try stopped by hand (mark, clear, timeout) is closed in the history.
                let reported = end.is_some_and(|e| snapshot.tasks.iter().any(|t| t.id == e.ti_id && t.task_id == c.task_id));
                if c.from == TaskState::Running && !reported {
                    let ti_id = snapshot.tasks.iter().find(|t| t.task_id == c.task_id).map(|t| t.id.clone());
                    let state = if c.to == TaskState::Success { "success" } else { "failed" };
                    sqlx::query(
                        "UPDATE task_tries SET state = $1, end_date = $2, error = $3 \
                         WHERE ti_id = $4 AND try_number = $5 AND state = 'running'",
                    )
                    .bind(state)
                    .bind(now)
                    .bind(format!("stopped: task instance set to {}", c.to))
                    .bind(ti_id)
                    .bind(c.try_number)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            if let Some(e) = end {
                // The try ends in the state the plan gives its task instance.
                let task_id = snapshot.tasks.iter().find(|t| t.id == e.ti_id).map(|t| t.task_id.as_str());
                let state = plan
                    .tasks
                    .iter()
                    .find(|c| Some(c.task_id.as_str()) == task_id && c.from == TaskState::Running)
                    .map(|c| c.to)
                    .ok_or_else(|| $crate::store::Error::Plan(format!("the plan does not end try {} of {}", e.try_number, e.ti_id)))?;
                let done = sqlx::query(
                    "UPDATE task_tries SET state = $1, end_date = $2, exit_code = $3, error = $4, \
                       pid = COALESCE($7, pid) \
                     WHERE ti_id = $5 AND try_number = $6 AND state = 'running'",
                )
                .bind(state.as_str())
                .bind(e.at)
                .bind(e.exit_code)
                .bind(&e.error)
                .bind(&e.ti_id)
                .bind(e.try_number)
                .bind(e.pid)
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() != 1 {
                    return Err($crate::store::Error::Conflict(format!(
                        "try {} of task instance {} is not running",
                        e.try_number, e.ti_id
                    )));
                }
            }
            // The run's counters follow its task instances in the same transaction.
            let (mut d_unfinished, mut d_failed) = (0_i64, 0_i64);
            for c in &plan.tasks {
                d_unfinished += i64::from(!c.to.is_finished()) - i64::from(!c.from.is_finished());
                d_failed += i64::from(c.to.is_failure()) - i64::from(c.from.is_failure());
            }
            if d_unfinished != 0 || d_failed != 0 {
                sqlx::query("UPDATE dag_runs SET unfinished = unfinished + $1, failed = failed + $2 WHERE id = $3")
                    .bind(d_unfinished)
                    .bind(d_failed)
                    .bind(run_pk)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some((from, to)) = plan.run {
                if !from.can_move_to(to) {
                    return Err($crate::store::Error::IllegalTransition(format!("run {run_pk} cannot go from {from} to {to}")));
                }
                let done = sqlx::query(
                    "UPDATE dag_runs SET state = $1, \
                       start_date = CASE WHEN $1 = 'running' THEN COALESCE(start_date, $2) ELSE start_date END, \
                       end_date = CASE WHEN $1 IN ('success', 'failed') THEN $2 ELSE NULL END \
                     WHERE id = $3 AND state = $4",
                )
                .bind(to.as_str())
                .bind(now)
                .bind(run_pk)
                .bind(from.as_str())
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() != 1 {
                    return Err($crate::store::Error::Conflict(format!("run {run_pk} is no longer {from}")));
                }
            }
            if let Some(a) = audit {
                insert_audit(&mut *conn, a).await?;
            }
            Ok(plan)
        }

        /// Serialises transactions that take the lock `key` across processes
        /// (PostgreSQL advisory lock, released at commit); SQLite's write
        /// transactions are serial already.
        async fn lock(conn: &mut <$db as sqlx::Database>::Connection, key: i64) -> $crate::store::Result<()> {
            if !$advisory_lock.is_empty() {
                sqlx::query($advisory_lock).bind(key).execute(&mut *conn).await?;
            }
            Ok(())
        }

        async fn insert_audit(
            conn: &mut <$db as sqlx::Database>::Connection,
            a: &$crate::store::AuditEntry,
        ) -> $crate::store::Result<()> {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, dag_id, run_id, task_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(a.at)
            .bind(&a.actor)
            .bind(a.action.as_str())
            .bind(&a.dag_id)
            .bind(&a.run_id)
            .bind(&a.task_id)
            .bind(&a.detail)
            .execute(conn)
            .await?;
            Ok(())
        }
    };
}

pub(super) use impl_store;
