//! The SQL of [`super::DispatchStore`]: queueing scheduled work within pool
//! and DAG limits, claims (a new try with a lease), heartbeats and the
//! leases that lapsed.

/// Implements [`super::DispatchStore`] for `$store` (see `impl_store!`).
macro_rules! impl_dispatch_store {
    (
        $store:ident,
        $db:ty,
        skip_locked = $skip_locked:literal,
        in_json = ($in_json_open:literal, $in_json_close:literal)
    ) => {
        #[async_trait::async_trait]
        impl $crate::store::DispatchStore for $store {
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
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<$crate::store::HeldTry>> {
                let mut lost = Vec::new();
                if tries.is_empty() {
                    return Ok(lost);
                }
                // One statement (and transaction) per lease: a heartbeat never
                // holds one try's row while it waits for another's, so it
                // cannot deadlock with a group commit finishing the same tries
                // in another order.
                for held in tries {
                    // A lease that lapsed is not renewed: the try is the
                    // timer's to fail, whatever the worker says now.
                    let done = sqlx::query(
                        "UPDATE task_instances SET lease_until = $1 WHERE id = $2 AND try_number = $3 \
                         AND state = 'running' AND lease_id = $4 AND lease_until >= $5",
                    )
                    .bind(lease_until)
                    .bind(&held.ti_id)
                    .bind(held.try_number)
                    .bind(&held.lease_id)
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                    if done.rows_affected() == 0 {
                        lost.push(held.clone());
                    }
                }
                Ok(lost)
            }

            async fn expired_leases(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<$crate::store::TryKey>> {
                Ok(sqlx::query_as(
                    "SELECT ti.run_pk, ti.id, ti.try_number FROM task_queue q JOIN task_instances ti ON ti.id = q.ti_id \
                     WHERE q.state = 'running' AND ti.state = 'running' AND ti.lease_until < $1",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
            }

            async fn running_for_worker(&self, worker: &str) -> $crate::store::Result<Vec<$crate::store::TryKey>> {
                Ok(sqlx::query_as(
                    "SELECT ti.run_pk, ti.id, ti.try_number FROM task_queue q JOIN task_instances ti ON ti.id = q.ti_id \
                     WHERE q.state = 'running' AND ti.state = 'running' AND ti.worker = $1",
                )
                    .bind(worker)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn due_retries(&self, now: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<Vec<i64>> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT q.run_pk FROM task_queue q JOIN task_instances ti ON ti.id = q.ti_id \
                     WHERE q.state IN ('up_for_retry', 'up_for_reschedule') AND ti.next_try_at <= $1",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
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
                "SELECT q.ti_id, q.dag_id, q.pool FROM task_queue q JOIN dag_runs r ON r.id = q.run_pk \
                 JOIN task_instances ti ON ti.id = q.ti_id \
                 WHERE q.state = 'scheduled' AND r.state = 'running' \
                 ORDER BY q.priority DESC, r.run_after, ti.updated_at LIMIT 5000",
            )
            .fetch_all(&mut *conn)
            .await?;
            if candidates.is_empty() {
                return Ok(0);
            }
            // Limits and current use of every pool ('p') and DAG ('d'), in one read.
            let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "SELECT 'p', name, slots, (SELECT COUNT(*) FROM task_queue t \
                   WHERE t.pool = pools.name AND t.state IN ('queued', 'running')) FROM pools \
                 UNION ALL \
                 SELECT 'd', dag_id, max_active_tasks, (SELECT COUNT(*) FROM task_queue t \
                   WHERE t.dag_id = dags.dag_id AND t.state IN ('queued', 'running')) FROM dags \
                   WHERE dag_id IN (SELECT DISTINCT dag_id FROM task_queue WHERE state = 'scheduled')",
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
                let rows: Vec<(String, i64, i64, String, String, String, i64, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>, String, i64, Option<String>)> = sqlx::query_as(concat!(
                "WITH picked AS MATERIALIZED (SELECT ti_id AS pick FROM task_queue WHERE state = 'queued' \
                   AND ($6 IS NULL OR queue ", $in_json_open, "$6", $in_json_close, ") \
                   ORDER BY priority DESC, queued_at LIMIT $5 ",
                $skip_locked,
                ") UPDATE task_instances SET state = 'running', try_number = try_number + 1, \
               start_date = CASE WHEN queued_at > $1 THEN queued_at ELSE $1 END, \
                   end_date = NULL, next_try_at = NULL, hostname = $2, worker = $3, pid = NULL, lease_until = $4, \
                   lease_id = $7, updated_at = $1 \
                 WHERE state = 'queued' AND id IN (SELECT pick FROM picked) \
                 RETURNING id, run_pk, version_id, dag_id, run_id, task_id, try_number, start_date, queued_at, queue, map_index, map_item"
            ))
            .bind(req.now)
            .bind(&req.hostname)
            .bind(&req.worker)
            .bind(req.lease_until)
            .bind(req.limit)
            .bind(req.queues.as_ref().map(sqlx::types::Json))
            .bind(&req.lease_id)
            .fetch_all(&mut *conn)
            .await?;
            let starts: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|r| r.7).collect();
            let claims: Vec<$crate::store::Claim> = rows
                .into_iter()
                .map(|(ti_id, run_pk, version_id, dag_id, run_id, task_id, try_number, started_at, queued_at, queue, map_index, map_item)| {
                    let log_path = $crate::store::log_path(&dag_id, &run_id, &task_id, map_index, try_number);
                    $crate::store::Claim {
                        ti_id, run_pk, dag_id, run_id, task_id, map_index, map_item, try_number, version_id, log_path, queued_at, started_at,
                        queue, lease_id: req.lease_id.clone(), lease_until: req.lease_until,
                    }
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
    };
}

pub(crate) use impl_dispatch_store;
