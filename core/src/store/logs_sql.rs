//! The SQL of [`super::LogStore`]: logs of tries that ran on remote workers,
//! kept as the pieces the workers pushed, each at its byte offset.

/// Implements [`super::LogStore`] for `$store`.
macro_rules! impl_log_store {
    ($store:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LogStore for $store {
            async fn append_log(
                &self,
                ti_id: &str,
                try_number: i64,
                offset: u64,
                data: &[u8],
            ) -> $crate::store::Result<u64> {
                let mut tx = self.tx().await?;
                let size = log_size_in(&mut *tx, ti_id, try_number).await?;
                let end = offset + data.len() as u64;
                if offset > size {
                    return Err($crate::store::Error::Conflict(format!(
                        "the log piece starts at byte {offset}, but the log has only {size} bytes"
                    )));
                }
                // A piece sent again (its answer was lost) adds only what is new.
                if end > size {
                    let skip = usize::try_from(size - offset).unwrap_or(usize::MAX).min(data.len());
                    sqlx::query(
                        "INSERT INTO try_logs (ti_id, try_number, pos, data) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (ti_id, try_number, pos) DO NOTHING",
                    )
                    .bind(ti_id)
                    .bind(try_number)
                    .bind(i64::try_from(size).unwrap_or(i64::MAX))
                    .bind(&data[skip..])
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(end.max(size))
            }

            async fn read_log(
                &self,
                ti_id: &str,
                try_number: i64,
                offset: u64,
            ) -> $crate::store::Result<Option<(Vec<u8>, u64)>> {
                let from = i64::try_from(offset).unwrap_or(i64::MAX);
                let pieces: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT pos, data FROM try_logs WHERE ti_id = $1 AND try_number = $2 \
                     AND pos + length(data) > $3 ORDER BY pos",
                )
                .bind(ti_id)
                .bind(try_number)
                .bind(from)
                .fetch_all(self.reader())
                .await?;
                if pieces.is_empty() {
                    let mut conn = self.reader().acquire().await?;
                    let size = log_size_in(&mut *conn, ti_id, try_number).await?;
                    return Ok((size > 0).then(|| (Vec::new(), size)));
                }
                let mut text = Vec::new();
                let mut end = offset;
                for (pos, data) in pieces {
                    let pos = u64::try_from(pos).unwrap_or(0);
                    let skip = usize::try_from(end.saturating_sub(pos)).unwrap_or(usize::MAX).min(data.len());
                    text.extend_from_slice(&data[skip..]);
                    end = pos + data.len() as u64;
                }
                Ok(Some((text, end)))
            }
        }

        /// How many bytes of a try's log were pushed.
        async fn log_size_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            ti_id: &str,
            try_number: i64,
        ) -> $crate::store::Result<u64> {
            let size: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(pos + length(data)) FROM try_logs WHERE ti_id = $1 AND try_number = $2",
            )
            .bind(ti_id)
            .bind(try_number)
            .fetch_one(conn)
            .await?;
            Ok(size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
        }
    };
}

pub(crate) use impl_log_store;
