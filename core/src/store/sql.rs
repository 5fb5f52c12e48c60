//! The SQL of the store, written once and instantiated for each backend by
//! [`impl_store!`]. SQLite and PostgreSQL share every statement (both take
//! `$N` placeholders, `RETURNING` and `ON CONFLICT`); the only differences are
//! passed in: row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) and the
//! dispatch lock (an advisory lock), which SQLite does not need because its
//! write transactions are `BEGIN IMMEDIATE`; and how a JSON array parameter
//! becomes a list of keys (one prepared statement whatever its length), in the
//! form each planner turns into index lookups; and the seconds between
//! `start_date` and `end_date` (duration filters).

/// Columns of `task_instances` in [`super::TaskInstanceRecord`] order.
pub(super) const TI_COLUMNS: &str = "id, run_pk, dag_id, run_id, task_id, state, try_number, max_tries, pool, priority, \
     queued_at, start_date, end_date, next_try_at, hostname, worker, pid, lease_until, updated_at, queue, lease_id, \
     map_index, map_item, map_count";

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

/// Implements [`super::Store`] and the engine's parts of it ([`super::DagStore`],
/// [`super::RunStore`], [`super::DispatchStore`], [`super::AdvanceStore`],
/// each in its own file) for `$store`, which must have `tx()` (a write
/// transaction), `reader()` and `writer()` (pools) and `run_migrations()`;
/// the arguments are the backend's only SQL differences.
macro_rules! impl_store {
    (
        $store:ident,
        $db:ty,
        for_update = $for_update:literal,
        skip_locked = $skip_locked:literal,
        advisory_lock = $advisory_lock:literal,
        in_json = ($in_json_open:literal, $in_json_close:literal),
        duration = $duration:literal
    ) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn migrate(&self) -> $crate::store::Result<()> {
                self.run_migrations().await
            }
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

        /// Records a notification a change fires, once (its key).
        async fn insert_notice(
            conn: &mut <$db as sqlx::Database>::Connection,
            run_pk: i64,
            n: &$crate::store::Notice,
            at: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::Result<()> {
            sqlx::query($crate::store::statements::insert_notice!())
            .bind(n.key(run_pk))
            .bind(run_pk)
            .bind(&n.task_id)
            .bind(n.try_number)
            .bind(n.event.as_str())
            .bind(&n.rule)
            .bind(at)
            .bind(n.map_index)
            .execute(conn)
            .await?;
            Ok(())
        }

        $crate::store::dags_sql::impl_dag_store!($store);
        $crate::store::runs_sql::impl_run_store!($store, $db, duration = $duration);
        $crate::store::dispatch_sql::impl_dispatch_store!(
            $store,
            $db,
            skip_locked = $skip_locked,
            in_json = ($in_json_open, $in_json_close)
        );
        $crate::store::advance_sql::impl_advance_store!(
            $store,
            $db,
            for_update = $for_update,
            in_json = ($in_json_open, $in_json_close)
        );
        $crate::store::variables_sql::impl_variable_store!($store);
        $crate::store::connections_sql::impl_connection_store!($store);
        $crate::store::assets_sql::impl_asset_store!($store);
        $crate::store::notifications_sql::impl_notification_store!($store, skip_locked = $skip_locked);
    };
}

pub(super) use impl_store;
