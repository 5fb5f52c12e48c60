//! The SQL of [`super::NotificationStore`]: the notifications outbox.

/// Implements [`super::NotificationStore`] for `$store` (inside
/// `impl_store!`'s module, for `insert_notice`).
macro_rules! impl_notification_store {
    ($store:ident, skip_locked = $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::NotificationStore for $store {
            async fn record_notices(
                &self,
                run_pk: i64,
                notices: &[$crate::store::Notice],
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                if notices.is_empty() {
                    return Ok(());
                }
                let mut tx = self.tx().await?;
                for n in notices {
                    insert_notice(&mut *tx, run_pk, n, at).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_notifications(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::NotificationRecord>> {
                // Most passes find nothing: a read first keeps them off the
                // write lock.
                let due: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= $1 LIMIT 1",
                )
                .bind(now)
                .fetch_optional(self.reader())
                .await?;
                if due.is_none() {
                    return Ok(Vec::new());
                }
                let mut tx = self.tx().await?;
                // Picked once (a materialized CTE), as claims of tries are.
                let rows = sqlx::query_as(concat!(
                    "WITH picked AS MATERIALIZED (SELECT id AS pick FROM notifications \
                       WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $3 ",
                    $skip_locked,
                    ") UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $2 \
                     WHERE state = 'pending' AND id IN (SELECT pick FROM picked) \
                     RETURNING id, run_pk, task_id, try_number, event, rule, state, attempts, \
                       next_attempt_at, last_error, created_at, sent_at, map_index"
                ))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(rows)
            }

            async fn finish_notification(
                &self,
                id: i64,
                delivery: &$crate::store::Delivery,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                use $crate::store::Delivery;
                let (state, next, error, sent) = match delivery {
                    Delivery::Sent => ("sent", at, None, Some(at)),
                    Delivery::Retry(next, why) => ("pending", *next, Some(why.as_str()), None),
                    Delivery::Failed(why) => ("failed", at, Some(why.as_str()), None),
                };
                sqlx::query(
                    "UPDATE notifications SET state = $2, next_attempt_at = $3, \
                       last_error = COALESCE($4, last_error), sent_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(next)
                .bind(error)
                .bind(sent)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn run_notifications(
                &self,
                run_pk: i64,
            ) -> $crate::store::Result<Vec<$crate::store::NotificationRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, run_pk, task_id, try_number, event, rule, state, attempts, next_attempt_at, \
                       last_error, created_at, sent_at, map_index FROM notifications WHERE run_pk = $1 ORDER BY id",
                )
                .bind(run_pk)
                .fetch_all(self.reader())
                .await?)
            }
        }
    };
}

pub(crate) use impl_notification_store;
