//! The SQL of [`super::VariableStore`]: variables templates read.

/// Implements [`super::VariableStore`] for `$store` (inside `impl_store!`'s
/// module, for `insert_audit`).
macro_rules! impl_variable_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::VariableStore for $store {
            async fn list_variables(
                &self,
                filter: &$crate::store::VariableFilter,
            ) -> $crate::store::Result<Vec<$crate::store::VariableRecord>> {
                Ok(sqlx::query_as(
                    "SELECT key, value, description, updated_at FROM variables \
                     WHERE ($1 IS NULL OR LOWER(key) LIKE $1) \
                       AND ($2 IS NULL OR SUBSTR(key, 1, LENGTH($2)) = $2) \
                     ORDER BY key",
                )
                .bind(filter.key_pattern.as_ref().map(|p| format!("%{}%", p.to_lowercase())))
                .bind(filter.key_prefix.as_deref())
                .fetch_all(self.reader())
                .await?)
            }

            async fn get_variable(&self, key: &str) -> $crate::store::Result<Option<$crate::store::VariableRecord>> {
                Ok(sqlx::query_as("SELECT key, value, description, updated_at FROM variables WHERE key = $1")
                    .bind(key)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn save_variable(
                &self,
                key: &str,
                value: &str,
                description: Option<&str>,
                mode: $crate::store::SaveMode,
                audit: &$crate::store::AuditEntry,
            ) -> $crate::store::Result<()> {
                use $crate::store::SaveMode;
                let mut tx = self.tx().await?;
                let sql = match mode {
                    SaveMode::Create => {
                        "INSERT INTO variables (key, value, description, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key) DO NOTHING"
                    }
                    SaveMode::Update => {
                        "UPDATE variables SET value = $2, description = $3, updated_at = $4 WHERE key = $1"
                    }
                    SaveMode::Upsert => {
                        "INSERT INTO variables (key, value, description, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                           description = excluded.description, updated_at = excluded.updated_at"
                    }
                };
                let done = sqlx::query(sql)
                    .bind(key)
                    .bind(value)
                    .bind(description)
                    .bind(audit.at)
                    .execute(&mut *tx)
                    .await?;
                mode.outcome(done.rows_affected(), &format!("variable `{key}`"))?;
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_variable(&self, key: &str, audit: &$crate::store::AuditEntry) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                let done = sqlx::query("DELETE FROM variables WHERE key = $1").bind(key).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("variable `{key}`")));
                }
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_variable_store;
