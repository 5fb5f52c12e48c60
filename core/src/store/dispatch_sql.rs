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
                // Each backend chooses how (see `queue_work` in its module).
                self.queue_work(now).await
            }

            async fn claim(&self, req: &$crate::store::ClaimRequest) -> $crate::store::Result<Vec<$crate::store::Claim>> {
                // Each backend chooses how (see `claim_work` in its module).
                self.claim_work(req).await
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

        // SQLite claims and queues on its direct writer instead.
        #[allow(dead_code)]
        impl $store {
            /// Queues scheduled work with sqlx, in a transaction of its own.
            async fn queue_here(&self, now: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<usize> {
                let mut tx = self.tx().await?;
                let queued = queue_in(&mut *tx, now).await?;
                tx.commit().await?;
                Ok(queued)
            }

            /// Claims queued work with sqlx, in a transaction of its own.
            async fn claim_here(&self, req: &$crate::store::ClaimRequest) -> $crate::store::Result<Vec<$crate::store::Claim>> {
                let mut tx = self.tx().await?;
                let claims = claim_in(&mut *tx, req).await?;
                tx.commit().await?;
                Ok(claims)
            }
        }

        /// Moves `scheduled` task instances of running runs to `queued` within
        /// pool slots and `max_active_tasks`, inside the caller's transaction.
        async fn queue_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::Result<usize> {
            use $crate::store::statements as st;
            // One dispatcher at a time, across processes: slot counts stay true.
            lock(&mut *conn, $crate::store::sql::DISPATCH_LOCK).await?;
            let candidates: Vec<(String, String, String)> = sqlx::query_as(st::queue_candidates!())
                .fetch_all(&mut *conn)
                .await?;
            if candidates.is_empty() {
                return Ok(0);
            }
            let limits = sqlx::query_as(st::queue_limits!()).fetch_all(&mut *conn).await?;
            let chosen = $crate::store::apply::choose_queued(&candidates, limits);
            if !chosen.is_empty() {
                let done = sqlx::query(st::queue_chosen!($in_json_open, $in_json_close))
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
            use $crate::store::statements as st;
            let rows: Vec<$crate::store::apply::ClaimedRow> =
                sqlx::query_as(st::claim_queued!($skip_locked, $in_json_open, $in_json_close))
                    .bind(req.now)
                    .bind(&req.hostname)
                    .bind(&req.worker)
                    .bind(req.lease_until)
                    .bind(req.limit)
                    .bind(req.queues.as_ref().map(sqlx::types::Json))
                    .bind(&req.lease_id)
                    .fetch_all(&mut *conn)
                    .await?;
            let claims: Vec<$crate::store::Claim> =
                rows.into_iter().map(|r| $crate::store::apply::claim_of(r, req)).collect();
            if !claims.is_empty() {
                let mut qb = sqlx::QueryBuilder::<$db>::new(st::try_columns!());
                qb.push_values(&claims, |mut b, c| {
                    b.push_bind(c.ti_id.clone())
                        .push_bind(c.try_number)
                        .push_bind(c.dag_id.clone())
                        .push_bind(c.run_id.clone())
                        .push_bind(c.task_id.clone())
                        .push_bind("running")
                        .push_bind(c.started_at)
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
