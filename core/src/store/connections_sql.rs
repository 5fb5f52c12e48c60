//! The SQL of [`super::ConnectionStore`]: connections kept by weir.

/// Implements [`super::ConnectionStore`] for `$store` (inside `impl_store!`'s
/// module, for `insert_audit`).
macro_rules! impl_connection_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::ConnectionStore for $store {
            async fn list_connections(
                &self,
                pattern: Option<&str>,
            ) -> $crate::store::Result<Vec<$crate::store::ConnectionRecord>> {
                Ok(sqlx::query_as(
                    "SELECT conn_id, conn_type, description, host, schema_name, login, password, port, \
                       extra, updated_at FROM connections \
                     WHERE ($1 IS NULL OR LOWER(conn_id) LIKE $1) ORDER BY conn_id",
                )
                .bind(pattern.map(|p| format!("%{}%", p.to_lowercase())))
                .fetch_all(self.reader())
                .await?)
            }

            async fn get_connection(
                &self,
                id: &str,
            ) -> $crate::store::Result<Option<$crate::store::ConnectionRecord>> {
                Ok(sqlx::query_as(
                    "SELECT conn_id, conn_type, description, host, schema_name, login, password, port, \
                       extra, updated_at FROM connections WHERE conn_id = $1",
                )
                .bind(id)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn save_connection(
                &self,
                c: &$crate::store::ConnectionRecord,
                mode: $crate::store::SaveMode,
                audit: &$crate::store::AuditEntry,
            ) -> $crate::store::Result<()> {
                use $crate::store::SaveMode;
                let mut tx = self.tx().await?;
                let sql = match mode {
                    SaveMode::Create => {
                        "INSERT INTO connections (conn_id, conn_type, description, host, schema_name, login, \
                           password, port, extra, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (conn_id) DO NOTHING"
                    }
                    SaveMode::Update => {
                        "UPDATE connections SET conn_type = $2, description = $3, host = $4, schema_name = $5, \
                           login = $6, password = $7, port = $8, extra = $9, updated_at = $10 WHERE conn_id = $1"
                    }
                    SaveMode::Upsert => {
                        "INSERT INTO connections (conn_id, conn_type, description, host, schema_name, login, \
                           password, port, extra, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (conn_id) DO UPDATE SET conn_type = excluded.conn_type, \
                           description = excluded.description, host = excluded.host, \
                           schema_name = excluded.schema_name, login = excluded.login, \
                           password = excluded.password, port = excluded.port, extra = excluded.extra, \
                           updated_at = excluded.updated_at"
                    }
                };
                let done = sqlx::query(sql)
                    .bind(&c.conn_id)
                    .bind(&c.conn_type)
                    .bind(&c.description)
                    .bind(&c.host)
                    .bind(&c.schema_name)
                    .bind(&c.login)
                    .bind(&c.password)
                    .bind(c.port)
                    .bind(&c.extra)
                    .bind(audit.at)
                    .execute(&mut *tx)
                    .await?;
                mode.outcome(done.rows_affected(), &format!("connection `{}`", c.conn_id))?;
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_connection(&self, id: &str, audit: &$crate::store::AuditEntry) -> $crate::store::Result<()> {
                let mut tx = self.tx().await?;
                let done = sqlx::query("DELETE FROM connections WHERE conn_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::Error::NotFound(format!("connection `{id}`")));
                }
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_connection_store;
