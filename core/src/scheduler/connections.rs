//! Connections kept by weir: set and deleted by people (audited by id, never
//! with their secrets), the password and the extra settings sealed with the
//! site's secret key. A try reads the URLs of the stored connections its
//! task names; the worker's environment (`WEIR_CONN_<ID>`) and `weir.toml`
//! win over them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dag::Dag;
use crate::secret_key::SecretKey;
use crate::store::{AuditAction, AuditEntry, Claim, ConnectionRecord, SaveMode};

use super::{Error, Result, Scheduler};

/// How long tries may see stored connections as they were read.
pub const CONNECTIONS_FRESH: Duration = Duration::from_secs(1);

/// The longest connection id (Airflow's limit).
pub const MAX_ID: usize = 200;

/// Connection URLs by id, as tries read them.
pub type ConnectionUrls = BTreeMap<String, String>;

/// Each stored connection's URL, or why it cannot be opened.
type Opened = BTreeMap<String, std::result::Result<String, String>>;

/// The cache of [`Scheduler::connection_urls_for`].
#[derive(Debug, Default)]
pub(super) struct Cached(Option<(Instant, Arc<Opened>)>);

/// A connection in clear: what people set and what a URL is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Id tasks name it by.
    pub conn_id: String,
    /// Kind: the URL scheme (`postgres`, `sqlite`, …).
    pub conn_type: String,
    /// What it is for.
    pub description: Option<String>,
    /// Host (for `sqlite`, the database file).
    pub host: Option<String>,
    /// Database (Airflow's `schema`).
    pub schema: Option<String>,
    /// User.
    pub login: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra settings: a JSON object whose entries become URL parameters.
    pub extra: Option<String>,
}

impl Connection {
    /// The parts of a URL (`postgres://user:pw@host:5432/db?sslmode=require`,
    /// `sqlite:///path/to.db`) as connection `id`.
    pub fn from_url(id: &str, text: &str) -> Result<Connection> {
        let bad = |why: String| Error::Invalid(format!("connection `{id}`: {why}"));
        let url = url::Url::parse(text).map_err(|e| bad(format!("not a URL ({e})")))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("the URL's user or password is not UTF-8".into()))
        };
        let scheme = url.scheme().to_owned();
        let conn_type = if scheme == "postgresql" {
            "postgres".into()
        } else {
            scheme
        };
        let extra: serde_json::Map<String, serde_json::Value> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
            .collect();
        let extra = (!extra.is_empty()).then(|| serde_json::Value::Object(extra).to_string());
        if conn_type == "sqlite" {
            let path = format!("{}{}", url.host_str().unwrap_or_default(), url.path());
            return Ok(Connection {
                conn_id: id.to_owned(),
                conn_type,
                host: Some(path).filter(|p| !p.is_empty()),
                extra,
                ..Connection::default()
            });
        }
        let schema = url.path().trim_start_matches('/');
        Ok(Connection {
            conn_id: id.to_owned(),
            conn_type,
            description: None,
            host: url.host_str().map(str::to_owned),
            schema: (!schema.is_empty()).then(|| decode(schema)).transpose()?,
            login: (!url.username().is_empty())
                .then(|| decode(url.username()))
                .transpose()?,
            password: url.password().map(decode).transpose()?,
            port: url.port().map(i64::from),
            extra,
        })
    }

    /// The connection as a URL tasks connect with.
    pub fn url(&self) -> String {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        /// Everything but RFC 3986's unreserved characters.
        const PART: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let enc = |s: &str| utf8_percent_encode(s, PART).to_string();
        let mut url = format!("{}://", self.conn_type);
        if self.conn_type == "sqlite" {
            url.push_str(self.host.as_deref().unwrap_or_default());
        } else {
            if let Some(login) = &self.login {
                url.push_str(&enc(login));
                if let Some(pw) = &self.password {
                    url.push(':');
                    url.push_str(&enc(pw));
                }
                url.push('@');
            }
            url.push_str(self.host.as_deref().unwrap_or_default());
            if let Some(port) = self.port {
                url.push_str(&format!(":{port}"));
            }
            if let Some(schema) = &self.schema {
                url.push('/');
                url.push_str(&enc(schema));
            }
        }
        let params: Vec<String> = self
            .extra
            .as_deref()
            .and_then(|e| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(e).ok()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                format!("{}={}", enc(&k), enc(&v))
            })
            .collect();
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        url
    }

    /// Checks the id, the kind, the port and the extra settings.
    pub fn check(&self) -> Result<()> {
        let id = &self.conn_id;
        let id_ok = !id.is_empty()
            && id.len() <= MAX_ID
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !id_ok {
            return Err(Error::Invalid(format!(
                "connection id `{id}`: use 1 to {MAX_ID} letters, digits, `_`, `-` or `.`"
            )));
        }
        let type_ok = !self.conn_type.is_empty()
            && self
                .conn_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'));
        if !type_ok {
            return Err(Error::Invalid(format!(
                "connection `{id}`: conn_type `{}` must be a URL scheme such as postgres or sqlite",
                self.conn_type
            )));
        }
        if let Some(port) = self.port
            && !(1..=65535).contains(&port)
        {
            return Err(Error::Invalid(format!(
                "connection `{id}`: port {port} is not between 1 and 65535"
            )));
        }
        if let Some(extra) = &self.extra
            && !serde_json::from_str::<serde_json::Value>(extra).is_ok_and(|v| v.is_object())
        {
            return Err(Error::Invalid(format!(
                "connection `{id}`: extra must be a JSON object"
            )));
        }
        Ok(())
    }

    /// The extra settings as people see them: values of secret-looking
    /// keys as `***`.
    pub fn shown_extra(&self) -> Option<String> {
        let extra = self.extra.as_deref()?;
        let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(extra) else {
            return Some(super::variables::MASK.to_owned());
        };
        for (k, v) in map.iter_mut() {
            if super::variables::is_sensitive(k) {
                *v = serde_json::Value::String(super::variables::MASK.to_owned());
            }
        }
        Some(serde_json::Value::Object(map).to_string())
    }
}

/// Where a sealed value lives: what it is bound to.
fn place(id: &str, field: &str) -> String {
    format!("connection {id} {field}")
}

impl Scheduler {
    /// The site's secret key; with `make`, made (in the key file) when there
    /// is none yet.
    async fn secret_key(&self, make: bool) -> Result<Option<&SecretKey>> {
        if let Some(k) = self.inner.secret_key.get() {
            return Ok(Some(k));
        }
        match self.inner.options.secret_key.load(make).await? {
            Some(k) => Ok(Some(
                self.inner.secret_key.get_or_init(|| async { k }).await,
            )),
            None => Ok(None),
        }
    }

    /// Opens a stored connection's secret parts.
    pub async fn open_connection(&self, rec: &ConnectionRecord) -> Result<Connection> {
        let key = if rec.password.is_some() || rec.extra.is_some() {
            Some(
                self.secret_key(false)
                    .await?
                    .ok_or(crate::secret_key::KeyError::Missing)?,
            )
        } else {
            None
        };
        let open = |field: &str, sealed: &Option<String>| -> Result<Option<String>> {
            match (sealed, key) {
                (Some(s), Some(k)) => Ok(Some(k.open(&place(&rec.conn_id, field), s)?)),
                _ => Ok(None),
            }
        };
        Ok(Connection {
            conn_id: rec.conn_id.clone(),
            conn_type: rec.conn_type.clone(),
            description: rec.description.clone(),
            host: rec.host.clone(),
            schema: rec.schema_name.clone(),
            login: rec.login.clone(),
            password: open("password", &rec.password)?,
            port: rec.port,
            extra: open("extra", &rec.extra)?,
        })
    }

    /// The stored connections whose id contains `pattern`, by id (sealed).
    pub async fn list_connections(&self, pattern: Option<&str>) -> Result<Vec<ConnectionRecord>> {
        Ok(self.inner.store.list_connections(pattern).await?)
    }

    /// One stored connection, opened; [`crate::store::Error::NotFound`] if
    /// there is none.
    pub async fn get_connection(&self, id: &str) -> Result<Connection> {
        let rec = self
            .inner
            .store
            .get_connection(id)
            .await?
            .ok_or_else(|| crate::store::Error::NotFound(format!("connection `{id}`")))?;
        self.open_connection(&rec).await
    }

    /// Saves a connection as `mode` allows, its secret parts sealed
    /// (audited by id only).
    pub async fn set_connection(
        &self,
        actor: &str,
        conn: &Connection,
        mode: SaveMode,
    ) -> Result<()> {
        conn.check()?;
        let key = if conn.password.is_some() || conn.extra.is_some() {
            Some(
                self.secret_key(true)
                    .await?
                    .ok_or(crate::secret_key::KeyError::Missing)?,
            )
        } else {
            None
        };
        let seal = |field: &str, plain: &Option<String>| -> Result<Option<String>> {
            match (plain, key) {
                (Some(p), Some(k)) => Ok(Some(k.seal(&place(&conn.conn_id, field), p)?)),
                _ => Ok(None),
            }
        };
        let rec = ConnectionRecord {
            conn_id: conn.conn_id.clone(),
            conn_type: conn.conn_type.clone(),
            description: conn.description.clone(),
            host: conn.host.clone(),
            schema_name: conn.schema.clone(),
            login: conn.login.clone(),
            password: seal("password", &conn.password)?,
            port: conn.port,
            extra: seal("extra", &conn.extra)?,
            updated_at: self.now(),
        };
        let audit = self.connection_audit(actor, AuditAction::SetConnection, &conn.conn_id);
        self.inner.store.save_connection(&rec, mode, &audit).await?;
        self.forget_connections();
        Ok(())
    }

    /// Deletes a stored connection (audited).
    pub async fn delete_connection(&self, actor: &str, id: &str) -> Result<()> {
        let audit = self.connection_audit(actor, AuditAction::DeleteConnection, id);
        self.inner.store.delete_connection(id, &audit).await?;
        self.forget_connections();
        Ok(())
    }

    /// The URLs of the stored connections a claimed try's task names (read
    /// again when older than [`CONNECTIONS_FRESH`]). A named connection that
    /// cannot be opened is an error naming it; one not stored is left out
    /// (the worker may have it in its environment or `weir.toml`).
    pub async fn connection_urls_for(&self, dag: &Dag, claim: &Claim) -> Result<ConnectionUrls> {
        let Some(task) = dag.tasks.get(claim.task_id.as_str()) else {
            return Ok(ConnectionUrls::new());
        };
        let named = task.connection_ids();
        if named.is_empty() {
            return Ok(ConnectionUrls::new());
        }
        let opened = self.opened_connections().await?;
        let mut urls = ConnectionUrls::new();
        for id in named {
            let found = opened.get(id).or_else(|| {
                opened
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(id))
                    .map(|(_, v)| v)
            });
            match found {
                Some(Ok(url)) => {
                    urls.insert(id.to_ascii_lowercase(), url.clone());
                }
                Some(Err(why)) => return Err(Error::Invalid(why.clone())),
                None => {}
            }
        }
        Ok(urls)
    }

    async fn opened_connections(&self) -> Result<Arc<Opened>> {
        if let Ok(c) = self.inner.connections.lock()
            && let Some((at, v)) = &c.0
            && at.elapsed() < CONNECTIONS_FRESH
        {
            return Ok(v.clone());
        }
        let read = Instant::now();
        let mut all = Opened::new();
        for rec in self.inner.store.list_connections(None).await? {
            let url = self
                .open_connection(&rec)
                .await
                .map(|c| c.url())
                .map_err(|e| format!("stored connection `{}`: {e}", rec.conn_id));
            all.insert(rec.conn_id, url);
        }
        let all = Arc::new(all);
        if let Ok(mut c) = self.inner.connections.lock() {
            c.0 = Some((read, all.clone()));
        }
        Ok(all)
    }

    fn connection_audit(&self, actor: &str, action: AuditAction, id: &str) -> AuditEntry {
        AuditEntry::about(
            actor,
            action,
            serde_json::json!({ "connection_id": id }),
            self.now(),
        )
    }

    fn forget_connections(&self) {
        if let Ok(mut c) = self.inner.connections.lock() {
            c.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_through_parts() {
        let c = Connection::from_url(
            "wh",
            "postgresql://etl%40corp:p%40ss%2Fw@db.local:5433/ware?sslmode=require",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                c.conn_type.as_str(),
                c.login.as_deref(),
                c.password.as_deref(),
                c.host.as_deref(),
                c.port,
                c.schema.as_deref()
            ),
            (
                "postgres",
                Some("etl@corp"),
                Some("p@ss/w"),
                Some("db.local"),
                Some(5433),
                Some("ware")
            )
        );
        assert_eq!(c.extra.as_deref(), Some(r#"{"sslmode":"require"}"#));
        assert_eq!(
            c.url(),
            "postgres://etl%40corp:p%40ss%2Fw@db.local:5433/ware?sslmode=require"
        );
        let s =
            Connection::from_url("lite", "sqlite:///tmp/x.db").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.conn_type.as_str(), s.host.as_deref()),
            ("sqlite", Some("/tmp/x.db"))
        );
        assert_eq!(s.url(), "sqlite:///tmp/x.db");
        let rel = Connection::from_url("lite", "sqlite://wh.db").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rel.url(), "sqlite://wh.db");
        assert!(Connection::from_url("x", "not a url").is_err());
    }

    #[test]
    fn bad_parts_are_named() {
        let ok = Connection {
            conn_id: "wh".into(),
            conn_type: "postgres".into(),
            ..Connection::default()
        };
        assert!(ok.check().is_ok());
        for (c, why) in [
            (
                Connection {
                    conn_id: "has space".into(),
                    ..ok.clone()
                },
                "connection id",
            ),
            (
                Connection {
                    conn_type: "post gres".into(),
                    ..ok.clone()
                },
                "conn_type",
            ),
            (
                Connection {
                    port: Some(70000),
                    ..ok.clone()
                },
                "port 70000",
            ),
            (
                Connection {
                    extra: Some("[1]".into()),
                    ..ok.clone()
                },
                "extra must be a JSON object",
            ),
        ] {
            let e = c
                .check()
                .map_err(|e| e.to_string())
                .err()
                .unwrap_or_default();
            assert!(e.contains(why), "{e}");
        }
        let secret = Connection {
            extra: Some(r#"{"sslmode": "require", "api_key": "k"}"#.into()),
            ..ok
        };
        assert_eq!(
            secret.shown_extra().as_deref(),
            Some(r#"{"api_key":"***","sslmode":"require"}"#)
        );
    }
}
