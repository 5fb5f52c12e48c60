//! The SQL of [`super::AccessStore`]: users, API tokens, backfills and
//! settings, shared by both backends like the rest of the store.

/// Implements [`super::AccessStore`] for `$store` (see `impl_store!`).
macro_rules! impl_access_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::AccessStore for $store {
            async fn create_user(&self, user: &$crate::access::UserRecord) -> $crate::store::Result<()> {
                let done = sqlx::query(
                    "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.created_at)
                .execute(self.writer())
                .await;
                match done {
                    Err(e) if $crate::store::sql::is_unique_violation(&e) => Err($crate::store::Error::Conflict(
                        format!("user `{}` already exists", user.username),
                    )),
                    other => other.map(|_| ()).map_err(Into::into),
                }
            }

            async fn get_user(&self, username: &str) -> $crate::store::Result<Option<$crate::access::UserRecord>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn list_users(&self) -> $crate::store::Result<Vec<$crate::access::UserRecord>> {
                Ok(sqlx::query_as("SELECT * FROM users ORDER BY username").fetch_all(self.reader()).await?)
            }

            async fn count_users(&self) -> $crate::store::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(self.reader()).await?)
            }

            async fn delete_user(&self, username: &str) -> $crate::store::Result<()> {
                let done = sqlx::query("DELETE FROM users WHERE username = $1")
                    .bind(username)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("user `{username}`")));
                }
                Ok(())
            }

            async fn record_login(&self, username: &str, at: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<()> {
                sqlx::query("UPDATE users SET last_login_at = $1 WHERE username = $2")
                    .bind(at)
                    .bind(username)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn create_token(&self, token: &$crate::access::TokenRecord) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, description, role, secret_hash, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&token.id)
                .bind(&token.description)
                .bind(token.role.as_str())
                .bind(&token.secret_hash)
                .bind(&token.created_by)
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn get_token(&self, id: &str) -> $crate::store::Result<Option<$crate::access::TokenRecord>> {
                Ok(sqlx::query_as("SELECT * FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn list_tokens(&self) -> $crate::store::Result<Vec<$crate::access::TokenRecord>> {
                Ok(sqlx::query_as("SELECT * FROM api_tokens ORDER BY created_at, id").fetch_all(self.reader()).await?)
            }

            async fn revoke_token(&self, id: &str, at: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<()> {
                let done = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("token `{id}`")));
                }
                Ok(())
            }

            async fn record_token_use(&self, id: &str, at: chrono::DateTime<chrono::Utc>) -> $crate::store::Result<()> {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn setting_or_insert(&self, key: &str, value: &str) -> $crate::store::Result<String> {
                sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(self.writer())
                    .await?;
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(self.writer())
                    .await?)
            }

            async fn create_backfill(
                &self,
                b: &$crate::access::NewBackfill,
            ) -> $crate::store::Result<$crate::access::BackfillRecord> {
                Ok(sqlx::query_as(
                    "INSERT INTO backfills (dag_id, from_date, to_date, dag_run_conf, reprocess_behavior, \
                       max_active_runs, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *",
                )
                .bind(&b.dag_id)
                .bind(b.from_date)
                .bind(b.to_date)
                .bind(&b.dag_run_conf)
                .bind(b.reprocess_behavior.as_str())
                .bind(b.max_active_runs)
                .bind(&b.created_by)
                .bind(b.created_at)
                .fetch_one(self.writer())
                .await?)
            }

            async fn list_backfills(
                &self,
                filter: &$crate::access::BackfillFilter,
            ) -> $crate::store::Result<(Vec<$crate::access::BackfillRecord>, i64)> {
                let (dag_id, active_only) = (filter.dag_id.as_deref(), filter.unfinished_only);
                let (limit, offset) = (filter.limit, filter.offset);
                const WHERE: &str = "WHERE ($1 IS NULL OR dag_id = $1) AND ($2 = FALSE OR completed_at IS NULL)";
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM backfills {WHERE}")))
                    .bind(dag_id)
                    .bind(active_only)
                    .fetch_one(self.reader())
                    .await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM backfills {WHERE} ORDER BY id LIMIT $3 OFFSET $4"
                )))
                .bind(dag_id)
                .bind(active_only)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(self.reader())
                .await?;
                Ok((rows, total))
            }

            async fn get_backfill(&self, id: i64) -> $crate::store::Result<$crate::access::BackfillRecord> {
                sqlx::query_as("SELECT * FROM backfills WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("backfill {id}")))
            }

            async fn update_backfill(
                &self,
                id: i64,
                change: $crate::access::BackfillChange,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::access::BackfillRecord> {
                use $crate::access::BackfillChange;
                let (is_paused, completed_at) = match change {
                    BackfillChange::Pause => (Some(true), None),
                    BackfillChange::Unpause => (Some(false), None),
                    BackfillChange::Cancel => (Some(true), Some(now)),
                    BackfillChange::Complete => (None, Some(now)),
                };
                sqlx::query_as(
                    "UPDATE backfills SET is_paused = COALESCE($1, is_paused), \
                       completed_at = COALESCE(completed_at, $2), updated_at = $3 \
                     WHERE id = $4 RETURNING *",
                )
                .bind(is_paused)
                .bind(completed_at)
                .bind(now)
                .bind(id)
                .fetch_optional(self.writer())
                .await?
                .ok_or_else(|| $crate::store::Error::NotFound(format!("backfill {id}")))
            }

            async fn list_pools(&self) -> $crate::store::Result<Vec<$crate::store::PoolRecord>> {
                Ok(sqlx::query_as(
                    "SELECT p.name, p.slots, p.description, \
                       (SELECT COUNT(*) FROM task_queue t WHERE t.pool = p.name AND t.state = 'running') AS running, \
                       (SELECT COUNT(*) FROM task_queue t WHERE t.pool = p.name AND t.state = 'queued') AS queued, \
                       (SELECT COUNT(*) FROM task_queue t WHERE t.pool = p.name AND t.state = 'scheduled') AS scheduled \
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
                filter: &$crate::store::AuditFilter,
                limit: i64,
                offset: i64,
            ) -> $crate::store::Result<(Vec<$crate::store::AuditRecord>, i64)> {
                const WHERE: &str = "WHERE ($1 IS NULL OR dag_id = $1) AND ($2 IS NULL OR task_id = $2) \
                     AND ($3 IS NULL OR run_id = $3) AND ($4 IS NULL OR actor = $4) AND ($5 IS NULL OR action = $5) \
                     AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR at > $7)";
                let action = filter.action.map(|a| a.as_str());
                // The filter's seven parameters, bound the same way for the count and the page.
                macro_rules! filtered {
                    ($query:expr) => {
                        $query
                            .bind(&filter.dag_id)
                            .bind(&filter.task_id)
                            .bind(&filter.run_id)
                            .bind(&filter.actor)
                            .bind(action)
                            .bind(filter.before)
                            .bind(filter.after)
                    };
                }
                let total: i64 = filtered!(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM audit_log {WHERE}"
                ))))
                .fetch_one(self.reader())
                .await?;
                let order = if filter.oldest_first { "ASC" } else { "DESC" };
                let rows = filtered!(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM audit_log {WHERE} ORDER BY id {order} LIMIT $8 OFFSET $9"
                ))))
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(self.reader())
                .await?;
                Ok((rows, total))
            }

            async fn get_audit(&self, id: i64) -> $crate::store::Result<$crate::store::AuditRecord> {
                sqlx::query_as("SELECT * FROM audit_log WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| $crate::store::Error::NotFound(format!("audit entry {id}")))
            }
        }
    };
}

pub(super) use impl_access_store;
