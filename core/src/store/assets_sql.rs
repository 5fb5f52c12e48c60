//! The SQL of [`super::AssetStore`]: datasets' lasting ids and the updates
//! recorded from outside weir.

/// Implements [`super::AssetStore`] for `$store` (inside `impl_store!`'s
/// module, for `insert_audit`).
macro_rules! impl_asset_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::AssetStore for $store {
            async fn ensure_assets(
                &self,
                names: &[String],
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                if names.is_empty() {
                    return Ok(());
                }
                let mut tx = self.tx().await?;
                for name in names {
                    sqlx::query("INSERT INTO assets (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                        .bind(name)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_assets(
                &self,
                pattern: Option<&str>,
            ) -> $crate::store::Result<Vec<$crate::store::AssetRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, name, created_at FROM assets WHERE ($1 IS NULL OR LOWER(name) LIKE $1) ORDER BY id",
                )
                .bind(pattern.map(|p| format!("%{}%", p.to_lowercase())))
                .fetch_all(self.reader())
                .await?)
            }

            async fn get_asset(&self, id: i64) -> $crate::store::Result<Option<$crate::store::AssetRecord>> {
                Ok(sqlx::query_as("SELECT id, name, created_at FROM assets WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn record_asset_event(
                &self,
                asset_id: i64,
                extra: Option<&str>,
                audit: &$crate::store::AuditEntry,
            ) -> $crate::store::Result<$crate::store::AssetEventRecord> {
                let mut tx = self.tx().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO asset_events (asset_id, extra, actor, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(asset_id)
                .bind(extra)
                .bind(&audit.actor)
                .bind(audit.at)
                .fetch_one(&mut *tx)
                .await?;
                insert_audit(&mut *tx, audit).await?;
                let event = sqlx::query_as(
                    "SELECT e.id, e.asset_id, a.name, e.extra, e.actor, e.created_at \
                     FROM asset_events e JOIN assets a ON a.id = e.asset_id WHERE e.id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(event)
            }

            async fn list_asset_events(
                &self,
                asset_id: Option<i64>,
                limit: i64,
                offset: i64,
            ) -> $crate::store::Result<(Vec<$crate::store::AssetEventRecord>, i64)> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM asset_events WHERE ($1 IS NULL OR asset_id = $1)",
                )
                .bind(asset_id)
                .fetch_one(self.reader())
                .await?;
                let events = sqlx::query_as(
                    "SELECT e.id, e.asset_id, a.name, e.extra, e.actor, e.created_at \
                     FROM asset_events e JOIN assets a ON a.id = e.asset_id \
                     WHERE ($1 IS NULL OR e.asset_id = $1) ORDER BY e.id DESC LIMIT $2 OFFSET $3",
                )
                .bind(asset_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(self.reader())
                .await?;
                Ok((events, total))
            }

            async fn latest_asset_event(
                &self,
                name: &str,
            ) -> $crate::store::Result<Option<$crate::store::AssetEventRecord>> {
                Ok(sqlx::query_as(
                    "SELECT e.id, e.asset_id, a.name, e.extra, e.actor, e.created_at \
                     FROM asset_events e JOIN assets a ON a.id = e.asset_id \
                     WHERE a.name = $1 ORDER BY e.id DESC LIMIT 1",
                )
                .bind(name)
                .fetch_optional(self.reader())
                .await?)
            }
        }
    };
}

pub(crate) use impl_asset_store;
