//! Where datasets live: a local folder, or a prefix of an S3 bucket
//! (`data_dir = "s3://bucket/prefix"`). Either way a dataset is a Delta
//! table at `<home>/<zone>/<name>/` whose versions are folders `v=<n>/`.
//!
//! On object storage a version is first written into a local staging
//! folder, then uploaded into its version folder and committed to the
//! Delta log with a put-if-absent (so two writers cannot both take a Delta
//! version); readers find versions through the catalog or the log, so an
//! upload a crash interrupted is never read, only reported by
//! `weir datasets verify` as an orphan. Object stores are registered once
//! per process by bucket, so DataFusion sessions and the Delta log reach
//! them by URL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Once, RwLock};

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use super::DataError;

/// Where a site's datasets live.
#[derive(Debug, Clone)]
pub enum Home {
    /// A local (or mounted) folder.
    Local(PathBuf),
    /// A bucket prefix; versions are staged in `staging` first.
    Object {
        /// `s3://bucket/prefix/`, always with the trailing slash.
        url: Url,
        /// The local folder versions are written into before upload.
        staging: PathBuf,
    },
}

/// A dataset's table or one of its version folders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Place {
    /// A local folder.
    Local(PathBuf),
    /// A prefix in object storage (`s3://bucket/prefix/raw/people/v=1`, no
    /// trailing slash).
    Object(Url),
}

fn invalid(msg: impl Into<String>) -> DataError {
    DataError::Invalid(msg.into())
}

fn object_err(what: impl std::fmt::Display) -> impl FnOnce(object_store::Error) -> DataError {
    move |e| DataError::Invalid(format!("{what}: {e}"))
}

/// The empty file that claims a version folder in object storage for the
/// writer that put it first (other engines skip files starting with `_`).
pub const CLAIM: &str = "_weir_claim";

/// The file in a version folder that records the CRC-32 of each of its
/// Parquet files, written before the version is published.
pub const CHECKSUMS: &str = "_weir_checksums.json";

/// The stores registered in this process, by `scheme://bucket`.
static STORES: LazyLock<RwLock<HashMap<String, Arc<dyn ObjectStore>>>> =
    LazyLock::new(Default::default);

fn bucket_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

/// The store registered for `url`'s bucket, and `url`'s path inside it.
pub fn store_for(url: &Url) -> Result<(Arc<dyn ObjectStore>, ObjectPath), DataError> {
    let key = bucket_key(url);
    let store = STORES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned()
        .ok_or_else(|| {
            invalid(format!(
                "{url}: no object storage is configured for {key} (data_dir and [storage] in weir.toml)"
            ))
        })?;
    let path = ObjectPath::from_url_path(url.path())
        .map_err(|e| invalid(format!("{url}: not an object path: {e}")))?;
    Ok((store, path))
}

/// Every registered store with its bucket URL (`s3://bucket`).
pub fn registered() -> Vec<(Url, Arc<dyn ObjectStore>)> {
    STORES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|(k, s)| Url::parse(k).ok().map(|u| (u, s.clone())))
        .collect()
}

impl Home {
    /// The home `data_dir` names: a folder, or `s3://bucket/prefix` whose
    /// store is built from `options` (S3 option names, as `[storage]` gives
    /// them) over the `AWS_*` environment, and registered for the process.
    pub fn new(
        data_dir: &Path,
        staging: &Path,
        options: &weir_core::config::StorageOptions,
    ) -> Result<Home, DataError> {
        let text = data_dir.to_string_lossy();
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(Home::Local(data_dir.to_path_buf()));
        };
        if scheme != "s3" {
            return Err(invalid(format!(
                "data_dir `{text}`: only local folders and s3:// are supported"
            )));
        }
        let url = Url::parse(&format!("{}/", text.trim_end_matches('/')))
            .map_err(|e| invalid(format!("data_dir `{text}`: {e}")))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid(format!("data_dir `{text}` names no bucket")))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in &options.0 {
            let k: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().map_err(|_| {
                invalid(format!(
                    "[storage] {key}: not an S3 setting (endpoint, region, access_key_id, secret_access_key, session_token, allow_http, …)"
                ))
            })?;
            builder = builder.with_config(k, value.to_string());
        }
        let store = builder
            .build()
            .map_err(|e| invalid(format!("object storage for {text}: {e}")))?;
        register(&url, Arc::new(store));
        Ok(Home::Object {
            url,
            staging: staging.to_path_buf(),
        })
    }

    /// The local folder data tasks write into: the data folder itself, or
    /// the staging folder of an object home.
    pub fn local_dir(&self) -> &Path {
        match self {
            Home::Local(dir) => dir,
            Home::Object { staging, .. } => staging,
        }
    }

    /// The table of `zone.name`.
    pub fn table(&self, zone: &str, name: &str) -> Place {
        self.root().join(zone).join(name)
    }

    /// The home itself.
    pub fn root(&self) -> Place {
        match self {
            Home::Local(dir) => Place::Local(dir.clone()),
            Home::Object { url, .. } => {
                let mut u = url.clone();
                u.set_path(url.path().trim_end_matches('/'));
                Place::Object(u)
            }
        }
    }

    /// The home as configured, for messages.
    pub fn describe(&self) -> String {
        self.root().to_string()
    }

    /// Whether datasets are in object storage.
    pub fn is_object(&self) -> bool {
        matches!(self, Home::Object { .. })
    }

    /// The text of the file `name` at the home's root; `None` when absent.
    pub async fn read_marker(&self, name: &str) -> Result<Option<String>, DataError> {
        match self.root().join(name) {
            Place::Local(p) => match tokio::fs::read_to_string(&p).await {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(DataError::io(format!("reading {}", p.display()))(e)),
            },
            Place::Object(url) => {
                let (store, path) = store_for(&url)?;
                match store.get(&path).await {
                    Ok(got) => {
                        let bytes = got.bytes().await.map_err(object_err(&url))?;
                        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(object_err(&url)(e)),
                }
            }
        }
    }

    /// Writes `text` as the file `name` at the home's root unless it
    /// exists; answers the text it holds afterwards.
    pub async fn write_marker(&self, name: &str, text: &str) -> Result<String, DataError> {
        if let Some(held) = self.read_marker(name).await? {
            return Ok(held);
        }
        match self.root().join(name) {
            Place::Local(path) => {
                let dir = self.local_dir();
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(DataError::io(format!("creating {}", dir.display())))?;
                let tmp = dir.join(format!("{name}.{}", uuid::Uuid::new_v4().simple()));
                tokio::fs::write(&tmp, text)
                    .await
                    .map_err(DataError::io(format!("writing {}", tmp.display())))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(DataError::io(format!("writing {}", path.display())))?;
            }
            Place::Object(url) => {
                let (store, path) = store_for(&url)?;
                let opts = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                match store.put_opts(&path, text.to_owned().into(), opts).await {
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(object_err(&url)(e)),
                }
            }
        }
        Ok(self.read_marker(name).await?.unwrap_or_default())
    }
}

/// Registers `store` for `url`'s bucket, and object storage with the Delta
/// log (once per process).
fn register(url: &Url, store: Arc<dyn ObjectStore>) {
    STORES
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(bucket_key(url), store);
    static DELTA: Once = Once::new();
    DELTA.call_once(|| {
        if let Ok(s3) = Url::parse("s3://") {
            deltalake_core::logstore::object_store_factories()
                .insert(s3.clone(), Arc::new(RegisteredStores));
            deltalake_core::logstore::logstore_factories().insert(s3, Arc::new(RegisteredStores));
        }
    });
}

/// Hands the Delta log the stores registered here, with its default log
/// store: commits are puts-if-absent, which S3 supports.
#[derive(Debug)]
struct RegisteredStores;

impl deltalake_core::logstore::ObjectStoreFactory for RegisteredStores {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &deltalake_core::logstore::StorageConfig,
    ) -> deltalake_core::DeltaResult<(deltalake_core::logstore::ObjectStoreRef, ObjectPath)> {
        store_for(url).map_err(|e| deltalake_core::DeltaTableError::Generic(e.to_string()))
    }
}

impl deltalake_core::logstore::LogStoreFactory for RegisteredStores {
    fn with_options(
        &self,
        prefixed_store: deltalake_core::logstore::ObjectStoreRef,
        root_store: deltalake_core::logstore::ObjectStoreRef,
        location: &Url,
        options: &deltalake_core::logstore::StorageConfig,
    ) -> deltalake_core::DeltaResult<Arc<dyn deltalake_core::logstore::LogStore>> {
        Ok(deltalake_core::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(p) => write!(f, "{}", p.display()),
            Place::Object(u) => f.write_str(u.as_str()),
        }
    }
}

impl Place {
    /// The place a catalog path names (`s3://…` or a local path).
    pub fn parse(text: &str) -> Place {
        match Url::parse(text) {
            Ok(u) if u.scheme() == "s3" => Place::Object(u),
            _ => Place::Local(PathBuf::from(text)),
        }
    }

    /// `name` inside this place.
    pub fn join(&self, name: &str) -> Place {
        match self {
            Place::Local(p) => Place::Local(p.join(name)),
            Place::Object(u) => {
                let mut u = u.clone();
                let path = format!("{}/{name}", u.path().trim_end_matches('/'));
                u.set_path(&path);
                Place::Object(u)
            }
        }
    }

    /// The place holding this one.
    pub fn parent(&self) -> Option<Place> {
        match self {
            Place::Local(p) => p.parent().map(|p| Place::Local(p.to_path_buf())),
            Place::Object(u) => {
                let (parent, _) = u.path().trim_end_matches('/').rsplit_once('/')?;
                let mut u = u.clone();
                u.set_path(parent);
                Some(Place::Object(u))
            }
        }
    }

    /// The last part of its path.
    pub fn name(&self) -> String {
        match self {
            Place::Local(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Place::Object(u) => u
                .path()
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(|n| {
                    percent_encoding::percent_decode_str(n)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default(),
        }
    }

    /// The place as a folder URL (with the trailing slash), for DataFusion
    /// and the Delta log.
    pub fn folder_url(&self) -> Result<Url, DataError> {
        match self {
            Place::Local(p) => {
                let abs = std::path::absolute(p)
                    .map_err(DataError::io(format!("resolving {}", p.display())))?;
                Url::from_directory_path(&abs)
                    .map_err(|()| invalid(format!("{}: not a folder path", abs.display())))
            }
            Place::Object(u) => {
                let mut u = u.clone();
                u.set_path(&format!("{}/", u.path().trim_end_matches('/')));
                Ok(u)
            }
        }
    }

    /// The files directly in this folder with their sizes, sorted by name;
    /// `None` when the folder does not exist (on object storage: is empty).
    pub async fn files(&self) -> Result<Option<Vec<(String, u64)>>, DataError> {
        match self {
            Place::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || match local_files(&dir) {
                    Ok(files) => Ok(Some(files)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(DataError::io(format!("reading {}", dir.display()))(e)),
                })
                .await
                .map_err(|e| invalid(format!("listing a folder: {e}")))?
            }
            Place::Object(url) => {
                let listed = listing(url).await?;
                if listed.objects.is_empty() && listed.common_prefixes.is_empty() {
                    return Ok(None);
                }
                let mut out: Vec<(String, u64)> = listed
                    .objects
                    .into_iter()
                    .filter_map(|m| m.location.filename().map(|n| (n.to_owned(), m.size)))
                    .collect();
                out.sort();
                Ok(Some(out))
            }
        }
    }

    /// The names of the folders directly in this one.
    pub async fn folders(&self) -> Result<Vec<String>, DataError> {
        match self {
            Place::Local(dir) => {
                let mut out = Vec::new();
                let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
                    return Ok(out);
                };
                while let Ok(Some(e)) = entries.next_entry().await {
                    if e.file_type().await.is_ok_and(|t| t.is_dir()) {
                        out.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
                out.sort();
                Ok(out)
            }
            Place::Object(url) => {
                let listed = listing(url).await?;
                let mut out: Vec<String> = listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_owned))
                    .collect();
                out.sort();
                Ok(out)
            }
        }
    }

    /// The checksums its [`CHECKSUMS`] file records, by file name; `None`
    /// when it has none (a version published before weir recorded them).
    pub async fn recorded_checksums(
        &self,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, DataError> {
        #[derive(serde::Deserialize)]
        struct Recorded {
            crc32: std::collections::BTreeMap<String, String>,
        }
        let place = self.join(CHECKSUMS);
        let text = match &place {
            Place::Local(p) => match tokio::fs::read_to_string(p).await {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(DataError::io(format!("reading {}", p.display()))(e)),
            },
            Place::Object(url) => {
                let (store, path) = store_for(url)?;
                match store.get(&path).await {
                    Ok(got) => {
                        let bytes = got.bytes().await.map_err(object_err(url))?;
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(object_err(url)(e)),
                }
            }
        };
        let recorded: Recorded = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("{place}: not a checksum file: {e}")))?;
        Ok(Some(recorded.crc32))
    }

    /// The CRC-32 of the file `name` in this folder, read whole.
    pub async fn checksum_of(&self, name: &str) -> Result<String, DataError> {
        match self.join(name) {
            Place::Local(p) => {
                let what = format!("reading {}", p.display());
                tokio::task::spawn_blocking(move || crc32_of(std::fs::File::open(&p)?))
                    .await
                    .map_err(|e| invalid(format!("{what}: {e}")))?
                    .map_err(DataError::io(what))
            }
            Place::Object(url) => {
                let (store, path) = store_for(&url)?;
                let got = store.get(&path).await.map_err(object_err(&url))?;
                let mut stream = got.into_stream();
                let mut hasher = crc32fast::Hasher::new();
                while let Some(chunk) = stream.next().await {
                    hasher.update(&chunk.map_err(object_err(&url))?);
                }
                Ok(format!("{:08x}", hasher.finalize()))
            }
        }
    }

    /// Removes the folder and everything in it; an absent one is no error.
    pub async fn remove(&self) -> Result<(), DataError> {
        match self {
            Place::Local(p) => match tokio::fs::remove_dir_all(p).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(DataError::io(format!("removing {}", p.display()))(e)),
            },
            Place::Object(url) => {
                let (store, path) = store_for(url)?;
                let paths = store.list(Some(&path)).map_ok(|m| m.location).boxed();
                store
                    .delete_stream(paths)
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(object_err(url))?;
                Ok(())
            }
        }
    }

    /// Takes this version folder for one writer: locally, whether it is
    /// free (the rename that follows fails if another writer fills it
    /// first); on object storage, a put-if-absent of its [`CLAIM`] file,
    /// which only one writer wins.
    async fn claim(&self) -> Result<bool, DataError> {
        match self {
            Place::Local(p) => Ok(!tokio::fs::try_exists(p).await.unwrap_or(false)),
            Place::Object(url) => {
                let (store, path) = store_for(url)?;
                let opts = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                let claim = path.join(CLAIM);
                match store.put_opts(&claim, Vec::<u8>::new().into(), opts).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                    Err(e) => Err(object_err(url)(e)),
                }
            }
        }
    }

    /// Moves the written local folder `tmp` to version `n`'s folder in this
    /// table (`v=<n>`, or `v=<n>.<k>` if another writer took that name) and
    /// makes it durable before the catalog can name it: locally a rename
    /// and an fsync of the files and folders, on object storage an upload
    /// of each file (then `tmp` is removed). Answers the folder and its size
    /// in bytes.
    pub async fn settle(&self, tmp: &Path, n: i64) -> Result<(Place, u64), DataError> {
        let mut k = 0;
        let dest = loop {
            let name = if k == 0 {
                format!("v={n}")
            } else {
                format!("v={n}.{k}")
            };
            let candidate = self.join(&name);
            if candidate.claim().await? {
                break candidate;
            }
            k += 1;
        };
        let files = record_checksums(tmp).await?;
        match (&dest, self) {
            (Place::Local(dest), Place::Local(folder)) => {
                tokio::fs::rename(tmp, dest)
                    .await
                    .map_err(DataError::io(format!(
                        "renaming {} to {}",
                        tmp.display(),
                        dest.display()
                    )))?;
                let (dir, parent) = (dest.clone(), folder.clone());
                tokio::task::spawn_blocking(move || sync_tree(&dir, &parent))
                    .await
                    .map_err(|e| invalid(format!("syncing a version: {e}")))?
                    .map_err(DataError::io(format!("syncing {}", dest.display())))?;
            }
            (Place::Object(url), _) => {
                upload(tmp, &files, url).await?;
                let _ = tokio::fs::remove_dir_all(tmp).await;
            }
            (Place::Local(_), Place::Object(_)) => {
                return Err(invalid("a local version in an object table"));
            }
        }
        // The folder holds what was written (and an empty claim, in a bucket).
        let bytes = files.iter().map(|(_, len)| len).sum();
        Ok((dest, bytes))
    }
}

/// Writes the [`CHECKSUMS`] file of the local folder `dir`; answers the
/// folder's files then, with their sizes.
async fn record_checksums(dir: &Path) -> Result<Vec<(String, u64)>, DataError> {
    let dir = dir.to_path_buf();
    let what = format!("recording the checksums of {}", dir.display());
    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(String, u64)>> {
        let mut sums = std::collections::BTreeMap::new();
        for (name, _) in local_files(&dir)? {
            if name.ends_with(".parquet") {
                let file = std::fs::File::open(dir.join(&name))?;
                sums.insert(name, crc32_of(file)?);
            }
        }
        let text = serde_json::json!({ "crc32": sums }).to_string();
        std::fs::write(dir.join(CHECKSUMS), text)?;
        local_files(&dir)
    })
    .await
    .map_err(|e| invalid(format!("{what}: {e}")))?
    .map_err(DataError::io(what))
}

/// The CRC-32 of what `r` reads, as 8 hex digits.
fn crc32_of(mut r: impl std::io::Read) -> std::io::Result<String> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:08x}", hasher.finalize()))
}

/// What is directly in the folder `url`: its objects and sub-folders.
async fn listing(url: &Url) -> Result<object_store::ListResult, DataError> {
    let (store, path) = store_for(url)?;
    store
        .list_with_delimiter(Some(&path))
        .await
        .map_err(object_err(url))
}

/// Uploads `files` of the local folder `dir` into the folder `url`.
async fn upload(dir: &Path, files: &[(String, u64)], url: &Url) -> Result<(), DataError> {
    let (store, prefix) = store_for(url)?;
    for (name, _) in files {
        let from = dir.join(name);
        let to = prefix.clone().join(name.as_str());
        let mut file = tokio::fs::File::open(&from)
            .await
            .map_err(DataError::io(format!("reading {}", from.display())))?;
        let mut writer = object_store::buffered::BufWriter::new(store.clone(), to);
        let what = format!("uploading {} to {url}", from.display());
        tokio::io::copy(&mut file, &mut writer)
            .await
            .map_err(DataError::io(what.clone()))?;
        tokio::io::AsyncWriteExt::shutdown(&mut writer)
            .await
            .map_err(DataError::io(what))?;
    }
    Ok(())
}

/// The files of a local folder with their sizes, sorted by name.
pub(crate) fn local_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_file() {
            out.push((e.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Flushes every file of `dir`, `dir` itself and `parent` to disk.
fn sync_tree(dir: &Path, parent: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn object_places_join_and_split_like_folders() {
        let table = Place::parse("s3://lake/site/raw/people");
        assert!(matches!(table, Place::Object(_)));
        let v = table.join("v=3");
        assert_eq!(v.to_string(), "s3://lake/site/raw/people/v=3");
        assert_eq!(v.name(), "v=3");
        assert_eq!(v.parent(), Some(table.clone()));
        assert_eq!(
            table.folder_url().unwrap().as_str(),
            "s3://lake/site/raw/people/"
        );
        assert_eq!(
            Place::parse("data/raw/people/v=1"),
            Place::Local(PathBuf::from("data/raw/people/v=1"))
        );
    }

    #[test]
    fn a_bucket_home_names_its_tables_and_stages_locally() {
        use weir_core::config::StorageValue;
        let options = weir_core::config::StorageOptions(indexmap::IndexMap::from([
            (
                "endpoint".to_owned(),
                StorageValue::Text("http://127.0.0.1:1".into()),
            ),
            ("region".to_owned(), StorageValue::Text("us-east-1".into())),
            ("allow_http".to_owned(), StorageValue::Flag(true)),
        ]));
        let home = Home::new(Path::new("s3://lake/site/"), Path::new("stage"), &options).unwrap();
        assert!(home.is_object());
        assert_eq!(home.local_dir(), Path::new("stage"));
        assert_eq!(
            home.table("clean", "orders").to_string(),
            "s3://lake/site/clean/orders"
        );
        let (_, path) = store_for(&Url::parse("s3://lake/site/clean/orders").unwrap()).unwrap();
        assert_eq!(path.as_ref(), "site/clean/orders");
        let local = Home::new(Path::new("data"), Path::new("stage"), &options).unwrap();
        assert_eq!(local.local_dir(), Path::new("data"));
        assert_eq!(local.table("raw", "x").to_string(), "data/raw/x");
    }

    #[test]
    fn bad_homes_are_named() {
        let none = weir_core::config::StorageOptions::default();
        let e = Home::new(Path::new("gs://lake/x"), Path::new("s"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gs://lake/x") && e.contains("s3://"), "{e}");
        let e = Home::new(Path::new("s3:///x"), Path::new("s"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no bucket"), "{e}");
        let odd = weir_core::config::StorageOptions(indexmap::IndexMap::from([(
            "colour".to_owned(),
            weir_core::config::StorageValue::Text("blue".into()),
        )]));
        let e = Home::new(Path::new("s3://lake"), Path::new("s"), &odd)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[storage] colour") && e.contains("endpoint"),
            "{e}"
        );
        let e = store_for(&Url::parse("s3://nobody-registered/x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no object storage is configured"), "{e}");
    }
}
