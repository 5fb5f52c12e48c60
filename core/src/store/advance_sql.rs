//! The SQL of [`super::AdvanceStore`]: the guarded apply. A planner's plan is
//! written to a run inside one transaction, each change guarded by the state
//! and try number it expects; reports are group-committed.

/// Implements [`super::AdvanceStore`] for `$store` (see `impl_store!`).
macro_rules! impl_advance_store {
    (
        $store:ident,
        $db:ty,
        for_update = $for_update:literal,
        in_json = ($in_json_open:literal, $in_json_close:literal)
    ) => {
        #[async_trait::async_trait]
        impl $crate::store::AdvanceStore for $store {
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
                // Lock runs in key order, so concurrent batches cannot deadlock.
                let mut order: Vec<usize> = (0..items.len()).collect();
                order.sort_by_key(|&i| items[i].run_pk);
                let mut now = chrono::Utc::now();
                for e in items.iter().filter_map(|i| i.end) {
                    now = now.max(e.at);
                }
                // First without savepoints (two round trips fewer per item):
                // conflicts are rare, and after one the batch is applied again
                // with each item in a savepoint of its own.
                let mut tx = self.tx().await?;
                let mut results: Vec<Option<$crate::store::Result<$crate::store::Plan>>> = (0..items.len()).map(|_| None).collect();
                for &i in &order {
                    let item = &items[i];
                    match apply_in(&mut *tx, item.run_pk, &item.scope, item.end, None, item.planner).await {
                        Ok(plan) => results[i] = Some(Ok(plan)),
                        Err(e) => {
                            tx.rollback().await?;
                            if items.len() == 1 {
                                return Ok(vec![Err(e)]);
                            }
                            tx = self.tx().await?;
                            results = (0..items.len()).map(|_| None).collect();
                            break;
                        }
                    }
                }
                if results.iter().any(Option::is_none) {
                    for &i in &order {
                        let item = &items[i];
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
                    match groups.iter_mut().find(|(r, _)| r.worker == req.worker && r.hostname == req.hostname && r.queues == req.queues) {
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
        }

        /// Applies one planner's plan to one run inside the caller's
        /// transaction (see [`super::AdvanceStore::advance_run`]); returns the plan.
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
            let mut sibling_counts: Option<$crate::store::SiblingCounts> = None;
            let (snapshot, plan) = loop {
                // One prepared statement whatever the number of tasks: the ids travel as a JSON array.
                let (tasks, fan_ins): (Vec<$crate::store::TaskStateRecord>, _) = match &scope {
                    $crate::store::Scope::All => (
                        sqlx::query_as(
                            "SELECT id, task_id, state, try_number, max_tries, next_try_at, map_index, map_count \
                             FROM task_instances WHERE run_pk = $1",
                        )
                        .bind(run_pk)
                        .fetch_all(&mut *conn)
                        .await?,
                        Vec::new(),
                    ),
                    $crate::store::Scope::Tasks { tasks: ids, fan_ins, siblings } => {
                        // Of a task whose siblings are counted, its own row and the named instance's.
                        let (counted_task, read_index) = match siblings {
                            Some((t, i)) => (Some(t.as_str()), *i),
                            None => (None, -1),
                        };
                        let rows = sqlx::query_as(concat!(
                            "SELECT id, task_id, state, try_number, max_tries, next_try_at, map_index, map_count \
                             FROM task_instances WHERE run_pk = $1 AND task_id ",
                            $in_json_open,
                            "$2",
                            $in_json_close,
                            " AND ($3 IS NULL OR task_id <> $3 OR map_index < 0 OR map_index = $4)"
                        ))
                        .bind(run_pk)
                        .bind(sqlx::types::Json(ids))
                        .bind(counted_task)
                        .bind(read_index)
                        .fetch_all(&mut *conn)
                        .await?;
                        sibling_counts = match counted_task {
                            Some(task_id) => {
                                let counts: Vec<(String, i64)> = sqlx::query_as(
                                    "SELECT state, COUNT(*) FROM task_instances WHERE run_pk = $1 AND task_id = $2 \
                                     AND map_index >= 0 AND map_index <> $3 AND state <> 'removed' GROUP BY state",
                                )
                                .bind(run_pk)
                                .bind(task_id)
                                .bind(read_index)
                                .fetch_all(&mut *conn)
                                .await?;
                                Some($crate::store::SiblingCounts {
                                    task_id: task_id.to_owned(),
                                    counts: $crate::store::sql::parsed(counts)?,
                                })
                            }
                            None => None,
                        };
                        let mut counted = Vec::with_capacity(fan_ins.len());
                        for f in fan_ins {
                            // Upstream tasks read as rows are not counted twice.
                            let others: Vec<&String> = f.upstream.iter().filter(|u| !ids.contains(u)).collect();
                            // An expanded task counts by its mapped instances, not its own.
                            let counts: Vec<(String, i64)> = sqlx::query_as(concat!(
                                "SELECT state, COUNT(*) FROM task_instances WHERE run_pk = $1 AND task_id ",
                                $in_json_open,
                                "$2",
                                $in_json_close,
                                " AND state <> 'removed' AND NOT (map_index < 0 AND COALESCE(map_count, 0) > 0) GROUP BY state"
                            ))
                            .bind(run_pk)
                            .bind(sqlx::types::Json(&others))
                            .fetch_all(&mut *conn)
                            .await?;
                            let counts = $crate::store::sql::parsed(counts)?;
                            counted.push($crate::store::FanInCounts { task_id: f.task_id.clone(), counts });
                        }
                        (rows, counted)
                    }
                };
                let snapshot = $crate::store::RunSnapshot {
                    run: run.clone(),
                    tasks,
                    unfinished: run.unfinished,
                    failed: run.failed,
                    fan_ins,
                    siblings: sibling_counts.take(),
                };
                match planner(&snapshot)? {
                    $crate::store::Planned::Done(plan) => break (snapshot, plan),
                    $crate::store::Planned::NeedTasks(more) => {
                        rounds += 1;
                        scope = match scope {
                            $crate::store::Scope::Tasks { tasks: mut ids, fan_ins, siblings } if rounds < 4 => {
                                ids.extend(more);
                                ids.sort();
                                ids.dedup();
                                $crate::store::Scope::Tasks { tasks: ids, fan_ins, siblings }
                            }
                            _ => $crate::store::Scope::All,
                        };
                    }
                }
            };
            let now = end.map(|e| e.at).unwrap_or_else(chrono::Utc::now);
            // A mapped task's new instances exist before the moves that schedule them.
            if let Some(x) = &plan.expansion {
                expand_in(&mut *conn, run_pk, x, end, now).await?;
            }
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
                       map_count = CASE WHEN $4 THEN NULL ELSE map_count END, \
                       updated_at = $6 \
                     WHERE run_pk = $7 AND task_id = $8 AND map_index = $11 AND state = $9 AND try_number = $10",
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
                .bind(c.map_index)
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() != 1 {
                    return Err($crate::store::Error::Conflict(format!(
                        "task `{}` (map index {}) of run {} is no longer {} (try {})",
                        c.task_id, c.map_index, run_pk, c.from, c.try_number
                    )));
                }
                let row = snapshot.tasks.iter().find(|t| t.task_id == c.task_id && t.map_index == c.map_index);
                // A running try stopped by hand (mark, clear, timeout) is closed in the history.
                let reported = end.is_some_and(|e| row.is_some_and(|t| t.id == e.ti_id));
                if c.from == TaskState::Running && !reported {
                    let ti_id = row.map(|t| t.id.clone());
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
                let key = snapshot.tasks.iter().find(|t| t.id == e.ti_id).map(|t| (t.task_id.as_str(), t.map_index));
                let state = plan
                    .tasks
                    .iter()
                    .find(|c| Some((c.task_id.as_str(), c.map_index)) == key && c.from == TaskState::Running)
                    .map(|c| c.to)
                    .ok_or_else(|| $crate::store::Error::Plan(format!("the plan does not end try {} of {}", e.try_number, e.ti_id)))?;
                // An expansion over no items skips the task; its try succeeded.
                let state = if state == TaskState::Skipped { TaskState::Success } else { state };
                let done = sqlx::query(
                    "UPDATE task_tries SET state = $1, end_date = $2, exit_code = $3, error = $4, \
                       pid = COALESCE($7, pid), output = $8 \
                     WHERE ti_id = $5 AND try_number = $6 AND state = 'running'",
                )
                .bind(state.as_str())
                .bind(e.at)
                .bind(e.exit_code)
                .bind(&e.error)
                .bind(&e.ti_id)
                .bind(e.try_number)
                .bind(e.pid)
                .bind(&e.output)
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
            let made = plan.expansion.as_ref().map_or(0, |x| x.created.len());
            let (mut d_unfinished, mut d_failed) = (i64::try_from(made).unwrap_or(i64::MAX), 0_i64);
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
            // Notifications the changes fire: in this transaction, so none is
            // lost and none is sent for a change that did not happen.
            for n in &plan.notices {
                insert_notice(&mut *conn, run_pk, n, now).await?;
            }
            if let Some(a) = audit {
                insert_audit(&mut *conn, a).await?;
            }
            Ok(plan)
        }

        /// Records a mapped task's expansion: its instance count, and each
        /// mapped instance's item (the expanding try's output is the list),
        /// inserting the instances that do not exist yet.
        async fn expand_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            run_pk: i64,
            x: &$crate::store::Expansion,
            end: Option<&$crate::store::TryEnd>,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::Result<()> {
            let items: Vec<serde_json::Value> = match end.and_then(|e| e.output.as_deref()) {
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| $crate::store::Error::Plan(format!("the items of `{}` are not a list: {e}", x.task_id)))?,
                None => Vec::new(),
            };
            if i64::try_from(items.len()).ok() != Some(x.count) {
                return Err($crate::store::Error::Plan(format!(
                    "`{}` expands into {} instances but its try reported {} items",
                    x.task_id, x.count, items.len()
                )));
            }
            sqlx::query("UPDATE task_instances SET map_count = $1 WHERE run_pk = $2 AND task_id = $3 AND map_index = -1")
                .bind(x.count)
                .bind(run_pk)
                .bind(&x.task_id)
                .execute(&mut *conn)
                .await?;
            for (i, item) in (0_i64..).zip(&items) {
                let item = item.to_string();
                if x.created.contains(&i) {
                    sqlx::query(
                        "INSERT INTO task_instances (id, run_pk, version_id, dag_id, run_id, task_id, state, try_number, \
                           max_tries, pool, priority, queue, updated_at, map_index, map_item) \
                         SELECT $1, run_pk, version_id, dag_id, run_id, task_id, 'none', 0, $2, pool, priority, queue, $3, $4, $5 \
                         FROM task_instances WHERE run_pk = $6 AND task_id = $7 AND map_index = -1",
                    )
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(x.max_tries)
                    .bind(now)
                    .bind(i)
                    .bind(item)
                    .bind(run_pk)
                    .bind(&x.task_id)
                    .execute(&mut *conn)
                    .await?;
                } else {
                    sqlx::query("UPDATE task_instances SET map_item = $1 WHERE run_pk = $2 AND task_id = $3 AND map_index = $4")
                        .bind(item)
                        .bind(run_pk)
                        .bind(&x.task_id)
                        .bind(i)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            Ok(())
        }
    };
}

pub(crate) use impl_advance_store;
