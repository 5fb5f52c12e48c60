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
                let mut tx = self.tx().await?;
                let plan = apply_in(&mut *tx, run_pk, scope, end, audit, planner).await?;
                let now = end.map(|e| e.at).unwrap_or_else(chrono::Utc::now);
                // New work, or a slot freed for work already waiting: queue it now.
                let queued = if $crate::store::apply::dispatches(&plan) { queue_in(&mut *tx, now).await? } else { 0 };
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
                items: Vec<$crate::store::Advance>,
            ) -> $crate::store::Result<Vec<$crate::store::Result<$crate::store::Advanced>>> {
                // Each backend chooses how (see `advance_batch` in its module).
                self.advance_batch(items).await
            }
        }

        impl $store {
            /// Applies a batch of reports with sqlx (see
            /// [`super::AdvanceStore::advance_runs`]).
            async fn advance_runs_here(
                &self,
                items: &[$crate::store::Advance],
            ) -> $crate::store::Result<Vec<$crate::store::Result<$crate::store::Advanced>>> {
                use sqlx::Connection;
                // Lock runs in key order, so concurrent batches cannot deadlock.
                let mut order: Vec<usize> = (0..items.len()).collect();
                order.sort_by_key(|&i| items[i].run_pk);
                let mut now = chrono::Utc::now();
                for e in items.iter().filter_map(|i| i.end.as_ref()) {
                    now = now.max(e.at);
                }
                // First without savepoints (two round trips fewer per item):
                // conflicts are rare, and after one the batch is applied again
                // with each item in a savepoint of its own.
                let mut tx = self.tx().await?;
                let mut results: Vec<Option<$crate::store::Result<$crate::store::Plan>>> = (0..items.len()).map(|_| None).collect();
                for &i in &order {
                    let item = &items[i];
                    match apply_in(&mut *tx, item.run_pk, &item.scope, item.end.as_ref(), None, &*item.planner).await {
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
                        match apply_in(&mut *sp, item.run_pk, &item.scope, item.end.as_ref(), None, &*item.planner).await {
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
                let dispatch = results.iter().flatten().flatten().any($crate::store::apply::dispatches);
                let queued = if dispatch { queue_in(&mut *tx, now).await? } else { 0 };
                // Claims for the slots that asked, one query per worker, handed out in order.
                let mut claims: Vec<Vec<$crate::store::Claim>> = (0..items.len()).map(|_| Vec::new()).collect();
                let mut groups: Vec<(&$crate::store::ClaimRequest, Vec<usize>)> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(req) = &item.claim else { continue };
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
            use $crate::store::{apply, statements as st};
            let run: $crate::store::RunRecord = sqlx::query_as(st::select_run!($for_update))
                .bind(run_pk)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| $crate::store::Error::NotFound(format!("run {run_pk}")))?;
            let mut scope = std::borrow::Cow::Borrowed(scope);
            let mut rounds = 0;
            let (snapshot, plan) = loop {
                // One prepared statement whatever the number of tasks: the ids travel as a JSON array.
                let (tasks, fan_ins, siblings): (Vec<$crate::store::TaskStateRecord>, _, _) = match &*scope {
                    $crate::store::Scope::All => (
                        sqlx::query_as(st::select_all_tasks!())
                            .bind(run_pk)
                            .fetch_all(&mut *conn)
                            .await?,
                        Vec::new(),
                        None,
                    ),
                    $crate::store::Scope::Tasks { tasks: ids, fan_ins, siblings } => {
                        // Of a task whose siblings are counted, its own row and the named instance's.
                        let (counted_task, read_index) = match siblings {
                            Some((t, i)) => (Some(t.as_str()), *i),
                            None => (None, -1),
                        };
                        let rows = sqlx::query_as(st::select_scoped_tasks!($in_json_open, $in_json_close))
                            .bind(run_pk)
                            .bind(sqlx::types::Json(ids))
                            .bind(counted_task)
                            .bind(read_index)
                            .fetch_all(&mut *conn)
                            .await?;
                        let sibling_counts = match counted_task {
                            Some(task_id) => {
                                let counts: Vec<(String, i64)> = sqlx::query_as(st::count_siblings!())
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
                            let counts: Vec<(String, i64)> = sqlx::query_as(st::count_upstream!($in_json_open, $in_json_close))
                                .bind(run_pk)
                                .bind(sqlx::types::Json(&others))
                                .fetch_all(&mut *conn)
                                .await?;
                            let counts = $crate::store::sql::parsed(counts)?;
                            counted.push($crate::store::FanInCounts { task_id: f.task_id.clone(), counts });
                        }
                        (rows, counted, sibling_counts)
                    }
                };
                let snapshot = $crate::store::RunSnapshot::of(run.clone(), tasks, fan_ins, siblings);
                match planner(&snapshot)? {
                    $crate::store::Planned::Done(plan) => break (snapshot, plan),
                    $crate::store::Planned::NeedTasks(more) => {
                        rounds += 1;
                        scope = std::borrow::Cow::Owned(apply::widen(&scope, more, rounds));
                    }
                }
            };
            let now = end.map(|e| e.at).unwrap_or_else(chrono::Utc::now);
            // A mapped task's new instances exist before the moves that schedule them.
            if let Some(x) = &plan.expansion {
                expand_in(&mut *conn, run_pk, x, end, now).await?;
            }
            for c in &plan.tasks {
                let (reset, ends) = apply::task_move(c)?;
                let done = sqlx::query(st::move_task!())
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
                    return Err(apply::task_conflict(c, run_pk));
                }
                if let Some((ti_id, state)) = apply::stopped_try(&snapshot, c, end) {
                    sqlx::query(st::close_stopped_try!())
                        .bind(state)
                        .bind(now)
                        .bind(apply::stopped_error(c))
                        .bind(ti_id)
                        .bind(c.try_number)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            if let Some(e) = end {
                let state = apply::try_end_state(&snapshot, &plan, e)?;
                let done = sqlx::query(st::end_try!())
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
                    return Err(apply::try_conflict(e));
                }
            }
            // The run's counters follow its task instances in the same transaction.
            let (d_unfinished, d_failed) = apply::counter_deltas(&plan);
            if d_unfinished != 0 || d_failed != 0 {
                sqlx::query(st::count_run!())
                    .bind(d_unfinished)
                    .bind(d_failed)
                    .bind(run_pk)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some((from, to)) = plan.run {
                apply::run_move(run_pk, from, to)?;
                let done = sqlx::query(st::move_run!())
                    .bind(to.as_str())
                    .bind(now)
                    .bind(run_pk)
                    .bind(from.as_str())
                    .execute(&mut *conn)
                    .await?;
                if done.rows_affected() != 1 {
                    return Err(apply::run_conflict(run_pk, from));
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
