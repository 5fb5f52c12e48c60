//! Configuration: `weir.toml` (optional) with an environment override for
//! every key, `WEIR_<SECTION>_<KEY>` (for example `WEIR_DATABASE_URL`).
//! Connections come from `[connections.<id>]` or `WEIR_CONN_<ID>=<url>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named config file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// An environment override has a value of the wrong type.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
}

/// The environment variables that override settings (`WEIR_<SECTION>_<KEY>`).
pub const SETTING_VARS: [&str; 32] = [
    "WEIR_CORE_DAGS_FOLDER",
    "WEIR_CORE_DATA_DIR",
    "WEIR_CORE_STAGING_DIR",
    "WEIR_CORE_LOGS_DIR",
    "WEIR_CORE_DAG_REFRESH",
    "WEIR_CORE_DAGS_PAUSED_AT_CREATION",
    "WEIR_CORE_LEASE",
    "WEIR_CORE_SECRET_KEY",
    "WEIR_CORE_SECRET_KEY_FILE",
    "WEIR_DATABASE_URL",
    "WEIR_API_BIND",
    "WEIR_API_JWT_SECRET",
    "WEIR_API_TOKEN_HOURS",
    "WEIR_API_PUBLIC_URL",
    "WEIR_SMTP_HOST",
    "WEIR_SMTP_PORT",
    "WEIR_SMTP_FROM",
    "WEIR_SMTP_TLS",
    "WEIR_SMTP_USERNAME",
    "WEIR_SMTP_PASSWORD",
    "WEIR_SMTP_CA_FILE",
    "WEIR_WORKER_SLOTS",
    "WEIR_WORKER_SERVER",
    "WEIR_WORKER_TOKEN",
    "WEIR_WORKER_QUEUES",
    "WEIR_WORKER_GRACE",
    "WEIR_OPENLINEAGE_TRANSPORT",
    "WEIR_OPENLINEAGE_URL",
    "WEIR_OPENLINEAGE_ENDPOINT",
    "WEIR_OPENLINEAGE_API_KEY",
    "WEIR_OPENLINEAGE_PATH",
    "WEIR_OPENLINEAGE_NAMESPACE",
];

/// Other `WEIR_` variables weir reads or sets: the config file, the log
/// filter, what a task process is given, and the test and benchmark knobs.
const OTHER_VARS: [&str; 13] = [
    "WEIR_CONFIG",
    "WEIR_OUTPUT",
    "WEIR_LOG",
    "WEIR_WORKER",
    "WEIR_DAG_ID",
    "WEIR_RUN_ID",
    "WEIR_TASK_ID",
    "WEIR_TRY_NUMBER",
    "WEIR_LOGICAL_DATE",
    "WEIR_TEST_DATABASE_URL",
    "WEIR_TEST_S3_ENDPOINT",
    "WEIR_BENCH_DIR",
    "WEIR_BIN",
];

/// Families of variables: `WEIR_CONN_<ID>` and `WEIR_SECRET_<NAME>`.
const VAR_PREFIXES: [&str; 2] = ["WEIR_CONN_", "WEIR_SECRET_"];

/// A `WEIR_` environment variable that names nothing weir reads: it is
/// ignored, which is worth a warning (often a misspelt setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVar {
    /// The variable.
    pub name: String,
    /// The setting it most likely meant.
    pub suggestion: Option<&'static str>,
}

impl std::fmt::Display for UnknownVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the environment variable {} names no weir setting and is ignored",
            self.name
        )?;
        match self.suggestion {
            Some(s) => write!(f, " (did you mean {s}?)"),
            None => write!(f, " (settings: {})", SETTING_VARS.join(", ")),
        }
    }
}

/// The `WEIR_` variables among `names` that weir does not read, with the
/// setting each most likely meant.
pub fn unknown_vars<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<UnknownVar> {
    names
        .into_iter()
        .filter(|n| n.starts_with("WEIR_"))
        .filter(|n| !SETTING_VARS.contains(n) && !OTHER_VARS.contains(n))
        .filter(|n| !VAR_PREFIXES.iter().any(|p| n.starts_with(p)))
        .map(|n| UnknownVar {
            name: n.to_owned(),
            suggestion: crate::suggest::closest(n, SETTING_VARS.iter().copied()),
        })
        .collect()
}

/// All of weir's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folders and DAG loading.
    pub core: CoreConfig,
    /// The state database.
    pub database: DatabaseConfig,
    /// The HTTP server.
    pub api: ApiConfig,
    /// The local worker pool.
    pub worker: WorkerConfig,
    /// The mail relay e-mail notifications go through.
    pub smtp: SmtpConfig,
    /// Where OpenLineage events go (off unless a transport is set).
    pub openlineage: OpenLineageConfig,
    /// Database connections tasks use, by id.
    pub connections: IndexMap<String, ConnectionConfig>,
    /// Pools and their slots, by name (`default` always exists).
    pub pools: IndexMap<String, PoolConfig>,
    /// How long dataset versions are kept, by zone (`raw`) or dataset (`raw.orders`).
    pub retention: RetentionRules,
    /// Object storage settings when `data_dir` is `s3://…`: S3 options by
    /// name (`endpoint`, `region`, `access_key_id`, `allow_http`, …); the
    /// `AWS_*` environment variables give the rest.
    pub storage: StorageOptions,
}

/// `[storage]`: S3 options by name. Shown (`{:?}`) without the values of
/// secrets (keys, tokens, passwords).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StorageOptions(pub IndexMap<String, StorageValue>);

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |k: &str| {
            let k = k.to_ascii_lowercase();
            ["secret", "token", "password", "key"]
                .iter()
                .any(|s| k.contains(s))
        };
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if secret(k) {
                    "***".to_owned()
                } else {
                    v.to_string()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// A `[storage]` setting: text, a flag or a number, as TOML spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StorageValue {
    /// `region = "eu-west-1"`.
    Text(String),
    /// `allow_http = true`.
    Flag(bool),
    /// `imdsv1_fallback = 1`.
    Number(i64),
}

impl std::fmt::Display for StorageValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageValue::Text(t) => f.write_str(t),
            StorageValue::Flag(b) => write!(f, "{b}"),
            StorageValue::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Retention rules by zone or dataset name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct RetentionRules(pub IndexMap<String, RetentionConfig>);

/// `[retention.<zone or dataset>]`: versions beyond `keep` or older than
/// `max_age` are deleted after each new version (the newest always stays).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep at most this many versions.
    pub keep: Option<u32>,
    /// Delete versions older than this (`30d`, `12h`); also spelled `retention`.
    #[serde(alias = "retention")]
    pub max_age: Option<crate::dag::Duration>,
}

/// How long quarantined rows (raw values, possibly personal data) are kept
/// unless `[retention.quarantine]` or a dataset's own rule says otherwise.
pub const QUARANTINE_MAX_AGE: crate::dag::Duration = crate::dag::Duration::from_secs(30 * 86_400);

impl RetentionRules {
    /// The rule of a dataset: its own, else its zone's; the quarantine zone
    /// keeps versions for [`QUARANTINE_MAX_AGE`] when nothing is configured.
    pub fn rule_for(&self, dataset: &crate::dag::DatasetName) -> Option<RetentionConfig> {
        let configured = self
            .0
            .get(&dataset.to_string())
            .or_else(|| self.0.get(dataset.zone().as_str()))
            .copied();
        configured.or_else(|| {
            (dataset.zone() == crate::dag::Zone::Quarantine).then_some(RetentionConfig {
                keep: None,
                max_age: Some(QUARANTINE_MAX_AGE),
            })
        })
    }
}

/// `[core]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// Where DAG files are (`dags`).
    pub dags_folder: PathBuf,
    /// Where datasets are stored (`data`): a local folder, or object
    /// storage as `s3://bucket/prefix` (settings in `[storage]`).
    pub data_dir: PathBuf,
    /// Where versions are written before they are uploaded, when `data_dir`
    /// is object storage (`data-staging`).
    pub staging_dir: PathBuf,
    /// Where task logs are written (`logs`).
    pub logs_dir: PathBuf,
    /// Seconds between full re-reads of the DAG folder (30).
    pub dag_refresh: u64,
    /// New DAGs start paused (false).
    pub dags_paused_at_creation: bool,
    /// Seconds a claimed try's lease lasts without a heartbeat (30): a worker
    /// unheard of for this long has its tries failed through their retry rules.
    pub lease: u64,
    /// The key that seals stored connections' secrets (32 bytes in base64);
    /// every process of a site must have the same one.
    pub secret_key: Option<String>,
    /// Where the key is kept when `secret_key` is not set (`weir.key`, made
    /// when a connection with secrets is first saved).
    pub secret_key_file: PathBuf,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            dags_folder: "dags".into(),
            data_dir: "data".into(),
            staging_dir: "data-staging".into(),
            logs_dir: "logs".into(),
            dag_refresh: 30,
            dags_paused_at_creation: false,
            lease: 30,
            secret_key: None,
            secret_key_file: "weir.key".into(),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://weir.db` (default) or `postgres://user@host/db`.
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://weir.db".into(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// The address to listen on (`127.0.0.1:8080`).
    pub bind: String,
    /// The secret access tokens are signed with (default: one made at first
    /// start and kept in the database, shared by every API process).
    pub jwt_secret: Option<String>,
    /// Hours an access token from `POST /auth/token` lasts (24).
    pub token_hours: u64,
    /// The address people reach the web UI at, for links in notifications
    /// (default `http://` and `bind`).
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: "127.0.0.1:8080".into(),
            jwt_secret: None,
            token_hours: 24,
            public_url: None,
        }
    }
}

impl ApiConfig {
    /// The web UI's address for links (no trailing `/`).
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_owned()
    }
}

/// `[smtp]`: the server e-mail notifications go through: a relay on the
/// local network, or a provider's submission port over TLS with a login.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The server's host (`localhost`).
    pub host: String,
    /// Its port (25).
    pub port: u16,
    /// The sender address (`weir@localhost`).
    pub from: String,
    /// `none`, `starttls` or `tls`; by default `tls` on port 465,
    /// `starttls` on 587 and `none` elsewhere.
    pub tls: Option<SmtpTls>,
    /// The login (AUTH PLAIN), sent only over TLS.
    pub username: Option<String>,
    /// Its password (better set as `WEIR_SMTP_PASSWORD`).
    pub password: Option<String>,
    /// A CA certificate (PEM) trusted besides the system's and the built-in roots.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on a network you trust).
    None,
    /// Plain at first, then upgraded with STARTTLS before anything is sent;
    /// a server that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            other => Err(format!("`{other}` is not one of none, starttls, tls")),
        }
    }
}

impl SmtpConfig {
    /// The protection in force: as set, else by port.
    pub fn tls(&self) -> SmtpTls {
        self.tls.unwrap_or(match self.port {
            465 => SmtpTls::Tls,
            587 => SmtpTls::StartTls,
            _ => SmtpTls::None,
        })
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "localhost".into(),
            port: 25,
            from: "weir@localhost".into(),
            tls: None,
            username: None,
            password: None,
            ca_file: None,
        }
    }
}

/// `[openlineage]`: an OpenLineage event at the start and at the end of
/// every try, sent to a lineage service (Marquez, DataHub, OpenMetadata),
/// appended to a file or printed. Off by default.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenLineageConfig {
    /// `none` (the default), `http`, `file` or `console`.
    pub transport: LineageTransport,
    /// `http`: the service's base URL (`http://localhost:5000`).
    pub url: Option<String>,
    /// `http`: the path events are posted to, under `url`.
    pub endpoint: String,
    /// `http`: sent as `Authorization: Bearer <key>` (better set as
    /// `WEIR_OPENLINEAGE_API_KEY`).
    pub api_key: Option<String>,
    /// `file`: the file events are appended to, one JSON object per line.
    pub path: Option<PathBuf>,
    /// The namespace of weir's jobs (`<dag>.<task>`).
    pub namespace: String,
}

impl std::fmt::Debug for OpenLineageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenLineageConfig")
            .field("transport", &self.transport)
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("path", &self.path)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Default for OpenLineageConfig {
    fn default() -> Self {
        OpenLineageConfig {
            transport: LineageTransport::None,
            url: None,
            endpoint: "api/v1/lineage".into(),
            api_key: None,
            path: None,
            namespace: "weir".into(),
        }
    }
}

impl OpenLineageConfig {
    /// What is missing for the chosen transport, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        match self.transport {
            LineageTransport::Http if self.url.as_deref().is_none_or(str::is_empty) => Some(
                "[openlineage] transport = \"http\" needs `url` (the lineage service's base URL)",
            ),
            LineageTransport::File if self.path.is_none() => Some(
                "[openlineage] transport = \"file\" needs `path` (the file events are appended to)",
            ),
            _ if self.namespace.trim().is_empty() => {
                Some("[openlineage] namespace must not be empty")
            }
            _ => None,
        }
    }
}

/// Where OpenLineage events go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineageTransport {
    /// Nowhere: no event is made.
    #[default]
    None,
    /// POSTed to a lineage service's endpoint.
    Http,
    /// Appended to a file, one JSON object per line.
    File,
    /// Printed to standard output, one JSON object per line.
    Console,
}

impl std::str::FromStr for LineageTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(LineageTransport::None),
            "http" => Ok(LineageTransport::Http),
            "file" => Ok(LineageTransport::File),
            "console" => Ok(LineageTransport::Console),
            other => Err(format!("`{other}` is not one of none, http, file, console")),
        }
    }
}

/// `[worker]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Task slots of the local pool or of `weir worker` (default: cores × 2).
    pub slots: Option<usize>,
    /// `weir worker`: the API server to work for (`http://host:port`; a
    /// comma-separated list is tried in turn).
    pub server: Option<String>,
    /// `weir worker`: its `worker` API token.
    pub token: Option<String>,
    /// `weir worker`: the queues it serves (default `["default"]`).
    pub queues: Option<Vec<String>>,
    /// `weir worker`: seconds running tries may go on after SIGTERM before
    /// they are stopped (default 60).
    pub grace: Option<u64>,
}

/// `[connections.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The connection URL (without the password if `password_env` is set).
    pub url: String,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

/// `[pools.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// How many tasks of the pool may run at once.
    pub slots: u32,
}

impl Config {
    /// Reads `path` (or `weir.toml` in the working folder if it exists and no
    /// path is given), then applies overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Error> {
        let default_path = Path::new("weir.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        let mut config = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| Error::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        if let Some(problem) = config.openlineage.problem() {
            return Err(Error::Parse {
                path: file.map(Path::to_path_buf).unwrap_or_default(),
                message: problem.to_owned(),
            });
        }
        for key in config.retention.0.keys() {
            let ok = crate::dag::Zone::ALL.iter().any(|z| z.as_str() == key)
                || key.parse::<crate::dag::DatasetName>().is_ok();
            if !ok {
                return Err(Error::Parse {
                    path: file.map(Path::to_path_buf).unwrap_or_default(),
                    message: format!(
                        "[retention.{key}]: name a zone (raw, clean, curated, quarantine) or a dataset like raw.orders"
                    ),
                });
            }
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Error> {
        let parse_num = |var: &str, v: String| -> Result<u64, Error> {
            v.trim().parse().map_err(|_| Error::Env {
                var: var.to_owned(),
                message: format!("`{v}` is not a whole number"),
            })
        };
        let parse_bool = |var: &str, v: String| -> Result<bool, Error> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::Env {
                    var: var.to_owned(),
                    message: format!("`{v}` is not true or false"),
                }),
            }
        };
        if let Some(v) = env("WEIR_CORE_DAGS_FOLDER") {
            self.core.dags_folder = v.into();
        }
        if let Some(v) = env("WEIR_CORE_DATA_DIR") {
            self.core.data_dir = v.into();
        }
        if let Some(v) = env("WEIR_CORE_STAGING_DIR") {
            self.core.staging_dir = v.into();
        }
        if let Some(v) = env("WEIR_CORE_LOGS_DIR") {
            self.core.logs_dir = v.into();
        }
        if let Some(v) = env("WEIR_CORE_DAG_REFRESH") {
            self.core.dag_refresh = parse_num("WEIR_CORE_DAG_REFRESH", v)?;
        }
        if let Some(v) = env("WEIR_CORE_DAGS_PAUSED_AT_CREATION") {
            self.core.dags_paused_at_creation = parse_bool("WEIR_CORE_DAGS_PAUSED_AT_CREATION", v)?;
        }
        if let Some(v) = env("WEIR_CORE_LEASE") {
            self.core.lease = parse_num("WEIR_CORE_LEASE", v)?.clamp(1, 86_400);
        }
        if let Some(v) = env("WEIR_CORE_SECRET_KEY") {
            self.core.secret_key = Some(v);
        }
        if let Some(v) = env("WEIR_CORE_SECRET_KEY_FILE") {
            self.core.secret_key_file = v.into();
        }
        if let Some(v) = env("WEIR_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = env("WEIR_API_BIND") {
            self.api.bind = v;
        }
        if let Some(v) = env("WEIR_API_JWT_SECRET") {
            self.api.jwt_secret = Some(v);
        }
        if let Some(v) = env("WEIR_API_PUBLIC_URL") {
            self.api.public_url = Some(v);
        }
        if let Some(v) = env("WEIR_API_TOKEN_HOURS") {
            self.api.token_hours = parse_num("WEIR_API_TOKEN_HOURS", v)?.clamp(1, 24 * 365);
        }
        if let Some(v) = env("WEIR_SMTP_HOST") {
            self.smtp.host = v;
        }
        if let Some(v) = env("WEIR_SMTP_PORT") {
            self.smtp.port = u16::try_from(parse_num("WEIR_SMTP_PORT", v)?).unwrap_or(25);
        }
        if let Some(v) = env("WEIR_SMTP_FROM") {
            self.smtp.from = v;
        }
        if let Some(v) = env("WEIR_SMTP_TLS") {
            self.smtp.tls = Some(v.parse().map_err(|message| Error::Env {
                var: "WEIR_SMTP_TLS".into(),
                message,
            })?);
        }
        if let Some(v) = env("WEIR_SMTP_USERNAME") {
            self.smtp.username = Some(v);
        }
        if let Some(v) = env("WEIR_SMTP_PASSWORD") {
            self.smtp.password = Some(v);
        }
        if let Some(v) = env("WEIR_SMTP_CA_FILE") {
            self.smtp.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("WEIR_WORKER_SLOTS") {
            let n = parse_num("WEIR_WORKER_SLOTS", v)?;
            self.worker.slots = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(v) = env("WEIR_WORKER_SERVER") {
            self.worker.server = Some(v);
        }
        if let Some(v) = env("WEIR_WORKER_TOKEN") {
            self.worker.token = Some(v);
        }
        if let Some(v) = env("WEIR_WORKER_QUEUES") {
            self.worker.queues = Some(
                v.split(',')
                    .map(|q| q.trim().to_owned())
                    .filter(|q| !q.is_empty())
                    .collect(),
            );
        }
        if let Some(v) = env("WEIR_WORKER_GRACE") {
            self.worker.grace = Some(parse_num("WEIR_WORKER_GRACE", v)?);
        }
        if let Some(v) = env("WEIR_OPENLINEAGE_TRANSPORT") {
            self.openlineage.transport = v.parse().map_err(|message| Error::Env {
                var: "WEIR_OPENLINEAGE_TRANSPORT".into(),
                message,
            })?;
        }
        if let Some(v) = env("WEIR_OPENLINEAGE_URL") {
            self.openlineage.url = Some(v);
        }
        if let Some(v) = env("WEIR_OPENLINEAGE_ENDPOINT") {
            self.openlineage.endpoint = v;
        }
        if let Some(v) = env("WEIR_OPENLINEAGE_API_KEY") {
            self.openlineage.api_key = Some(v);
        }
        if let Some(v) = env("WEIR_OPENLINEAGE_PATH") {
            self.openlineage.path = Some(PathBuf::from(v));
        }
        if let Some(v) = env("WEIR_OPENLINEAGE_NAMESPACE") {
            self.openlineage.namespace = v;
        }
        Ok(())
    }

    /// Where the secret key of stored connections comes from: `secret_key`,
    /// else the key file.
    pub fn key_source(&self) -> crate::secret_key::KeySource {
        match &self.core.secret_key {
            Some(k) if !k.trim().is_empty() => crate::secret_key::KeySource::Value(k.clone()),
            _ => crate::secret_key::KeySource::File(self.core.secret_key_file.clone()),
        }
    }

    /// The URL of connection `id`: `WEIR_CONN_<ID>` wins over `[connections.<id>]`;
    /// with `password_env`, the password is taken from that variable.
    pub fn connection_url(&self, id: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if let Some(url) = env(&format!("WEIR_CONN_{}", id.to_ascii_uppercase())) {
            return Some(url);
        }
        let conn = self.connections.get(id)?;
        match conn.password_env.as_deref().and_then(env) {
            Some(password) => Some(with_password(&conn.url, &password)),
            None => Some(conn.url.clone()),
        }
    }
}

impl Config {
    /// Every connection URL by id: `[connections.<id>]` and every
    /// `WEIR_CONN_<ID>` variable of `vars` (ids in lower case; the variable wins).
    pub fn connection_urls(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> HashMap<String, String> {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let env = |k: &str| vars.get(k).cloned();
        let mut out: HashMap<String, String> = HashMap::new();
        for id in self.connections.keys() {
            if let Some(url) = self.connection_url(id, &env) {
                out.insert(id.to_ascii_lowercase(), url);
            }
        }
        for (k, v) in &vars {
            if let Some(id) = k.strip_prefix("WEIR_CONN_") {
                out.insert(id.to_ascii_lowercase(), v.clone());
            }
        }
        out
    }
}

/// `url` with the password of its `user:password@` part replaced by `***`,
/// for logs and messages.
pub fn redacted_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Puts `password` into a URL of the form `scheme://user@host/...`.
fn with_password(url: &str, password: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains(':') => {
            format!("{}:{}{}", &url[..at], password, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_is_kept_thirty_days_unless_configured() {
        let ds =
            |n: &str| -> crate::dag::DatasetName { n.parse().unwrap_or_else(|e| panic!("{e}")) };
        let none = RetentionRules::default();
        assert_eq!(
            none.rule_for(&ds("quarantine.orders"))
                .and_then(|r| r.max_age),
            Some(QUARANTINE_MAX_AGE)
        );
        assert_eq!(none.rule_for(&ds("clean.orders")), None);
        let mut rules = RetentionRules::default();
        rules
            .0
            .insert("quarantine".into(), RetentionConfig::default());
        rules.0.insert(
            "quarantine.keep_me".into(),
            RetentionConfig {
                keep: Some(3),
                max_age: None,
            },
        );
        assert_eq!(
            rules.rule_for(&ds("quarantine.orders")),
            Some(RetentionConfig::default()),
            "an empty [retention.quarantine] keeps everything"
        );
        assert_eq!(
            rules
                .rule_for(&ds("quarantine.keep_me"))
                .and_then(|r| r.keep),
            Some(3)
        );
    }

    #[test]
    fn every_setting_variable_is_read() {
        let unset = format!("{:?}", Config::load(None, &|_| None).unwrap_or_default());
        for var in SETTING_VARS {
            let changed = ["7", "true", "somewhere", "starttls", "console"]
                .into_iter()
                .any(|value| {
                    let env = |k: &str| (k == var).then(|| value.to_owned());
                    Config::load(None, &env).is_ok_and(|c| format!("{c:?}") != unset)
                });
            assert!(changed, "{var} is listed as a setting but changes nothing");
        }
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        for (url, shown) in [
            (
                "postgres://weir:s3cret@db:5432/weir",
                "postgres://weir:***@db:5432/weir",
            ),
            ("postgres://weir@db/weir", "postgres://weir@db/weir"),
            (
                "postgresql://u:p%40ss@h/d?x=1",
                "postgresql://u:***@h/d?x=1",
            ),
            ("sqlite://weir.db", "sqlite://weir.db"),
            ("sqlite:/tmp/a@b/weir.db", "sqlite:/tmp/a@b/weir.db"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }

    #[test]
    fn unknown_variables_are_named_with_a_guess() {
        let found = unknown_vars([
            "WEIR_DAGS_FOLDER",
            "WEIR_DATABASE_URL",
            "WEIR_CONN_SHOP",
            "WEIR_SECRET_SLACK_URL",
            "WEIR_LOG",
            "PATH",
            "WEIR_XYZZY",
        ]);
        let names: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|u| (u.name.as_str(), u.suggestion))
            .collect();
        assert_eq!(
            names,
            [
                ("WEIR_DAGS_FOLDER", Some("WEIR_CORE_DAGS_FOLDER")),
                ("WEIR_XYZZY", None)
            ]
        );
        assert!(
            found[0]
                .to_string()
                .contains("did you mean WEIR_CORE_DAGS_FOLDER?")
        );
        assert!(
            found[1].to_string().contains("WEIR_WORKER_SLOTS"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn env_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"sqlite://x.db\"\n[core]\ndags_folder = \"pipelines\"\n[connections.wh]\nurl = \"postgres://etl@db/wh\"\npassword_env = \"WH_PW\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let env = |k: &str| match k {
            "WEIR_DATABASE_URL" => Some("postgres://u@h/db".to_owned()),
            "WH_PW" => Some("s3cret".to_owned()),
            _ => None,
        };
        let c = Config::load(Some(&path), &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.database.url, "postgres://u@h/db");
        assert_eq!(c.core.dags_folder, PathBuf::from("pipelines"));
        assert_eq!(
            c.connection_url("wh", &env).as_deref(),
            Some("postgres://etl:s3cret@db/wh")
        );
    }

    #[test]
    fn storage_settings_take_any_scalar_and_hide_secrets() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "[core]\ndata_dir = \"s3://lake/weir\"\n[storage]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\nsecret_access_key = \"hunter2\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = Config::load(Some(&path), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let mut shown: Vec<(String, String)> = c
            .storage
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                ("allow_http".into(), "true".into()),
                ("endpoint".into(), "http://127.0.0.1:9000".into()),
                ("secret_access_key".into(), "hunter2".into()),
            ]
        );
        assert_eq!(c.core.staging_dir, PathBuf::from("data-staging"));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("allow_http"),
            "{debug}"
        );
    }

    #[test]
    fn smtp_tls_follows_the_port_unless_set_and_its_password_is_never_shown() {
        let env = |k: &str| match k {
            "WEIR_SMTP_PORT" => Some("587".to_owned()),
            "WEIR_SMTP_PASSWORD" => Some("hunter2".to_owned()),
            _ => None,
        };
        let c = Config::load(None, &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.smtp.tls(), SmtpTls::StartTls);
        assert!(!format!("{c:?}").contains("hunter2"));
        let plain = |k: &str| (k == "WEIR_SMTP_TLS").then(|| "none".to_owned());
        let c = Config::load(None, &plain).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.smtp.tls(), SmtpTls::None);
        let bad = |k: &str| (k == "WEIR_SMTP_TLS").then(|| "ssl".to_owned());
        let e = Config::load(None, &bad).unwrap_err().to_string();
        assert!(
            e.contains("WEIR_SMTP_TLS") && e.contains("none, starttls, tls"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "[core]\ndag_folder = \"x\"\n").unwrap_or_else(|e| panic!("{e}"));
        let e = Config::load(Some(&path), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `dag_folder`"), "{e}");
        let env = |k: &str| (k == "WEIR_WORKER_SLOTS").then(|| "many".to_owned());
        let e = Config::load(None, &env).unwrap_err().to_string();
        assert!(e.contains("WEIR_WORKER_SLOTS"), "{e}");
    }

    #[test]
    fn retention_rules_name_zones_or_datasets() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("weir.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        write("[retention.raw]\nkeep = 3\n[retention.\"clean.orders\"]\nmax_age = \"30d\"\n");
        let c = Config::load(Some(&path), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let ds = |n: &str| {
            n.parse::<crate::dag::DatasetName>()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            c.retention.rule_for(&ds("raw.orders")).and_then(|r| r.keep),
            Some(3)
        );
        let own = c
            .retention
            .rule_for(&ds("clean.orders"))
            .unwrap_or_else(|| panic!("rule"));
        assert_eq!(
            (own.keep, own.max_age.map(|d| d.as_secs())),
            (None, Some(30 * 86_400))
        );
        assert_eq!(c.retention.rule_for(&ds("curated.x")), None);
        write("[retention.curated]\nretention = \"12h\"\n");
        let c = Config::load(Some(&path), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.retention
                .rule_for(&ds("curated.x"))
                .and_then(|r| r.max_age)
                .map(|d| d.as_secs()),
            Some(12 * 3600)
        );
        write("[retention.bronze]\nkeep = 3\n");
        let e = Config::load(Some(&path), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[retention.bronze]"), "{e}");
        write("[retention.raw]\nkeeps = 3\n");
        let e = Config::load(Some(&path), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `keeps`"), "{e}");
    }
}
