//! Files in PostgreSQL: a [`Storage`] whose tree, contents, uploads in progress and upload log
//! live in one database (schema `ft`, see [`schema`]), so several ftserver instances can serve
//! one tree. This file owns connecting and the tree operations; `upload.rs` and `read.rs` move
//! the bytes.
//!
//! Every guarantee of the local directory holds, decided by the database rather than by one
//! process: a name is taken by `UNIQUE (parent, name)` at commit, an upload becomes visible in
//! the one transaction that commits it, and an upload in progress is locked (an advisory lock
//! on its row) by the connection writing it, which the server releases if that connection dies.

pub mod cluster;
mod pool;
mod read;
pub mod schema;
mod upload;

use crate::storage::{Kind, Meta, Opened, Storage, StorageError, Upload, UploadSpec, Uploader};
use common::path::VirtualPath;
use pool::{db_error, is_foreign_key_violation, is_unique_violation, Conn, Pool};
use postgres::config::Host;
use postgres::Config;
use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How many names `STOU` tries (`NAME`, `NAME.1`, ...) before giving up.
const UNIQUE_TRIES: u32 = 1000;

/// Why a database could not be opened as storage.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connection string is not a `postgres://` URL or libpq `key=value` string (a usage
    /// error: exit 2).
    #[error("invalid database url: {0}")]
    BadUrl(String),
    /// The database did not answer or refused us.
    #[error("cannot connect to {target}: {reason}")]
    Unreachable {
        /// The database, without the password.
        target: String,
        /// Why.
        reason: String,
    },
    /// The schema could not be created or migrated.
    #[error("{target}: {source}")]
    Schema {
        /// The database, without the password.
        target: String,
        /// Why.
        source: schema::SchemaError,
    },
}

impl ConnectError {
    /// Is this a usage error (a bad URL) rather than a failure to reach the database?
    pub fn is_usage(&self) -> bool {
        matches!(self, ConnectError::BadUrl(_))
    }
}

/// Parses a connection string: `postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=...]`,
/// `postgresql://...`, or libpq's `host=/run/postgresql dbname=ft`. A missing user is the
/// login name, as with libpq. TLS is not built in: `sslmode=require` is refused here.
pub fn parse_url(url: &str) -> Result<Config, ConnectError> {
    let mut config = Config::from_str(url).map_err(|e| ConnectError::BadUrl(e.to_string()))?;
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(ConnectError::BadUrl(
            "sslmode=require needs TLS, which this ftserver is built without (use sslmode=disable or prefer, \
             or a Unix socket)"
                .to_owned(),
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(ConnectError::BadUrl("no host (add @HOST to the url, or host=...)".to_owned()));
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .map_err(|_| ConnectError::BadUrl("no user (add USER@ to the url, or user=...)".to_owned()))?;
        config.user(&user);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        // The driver's default, two hours, would leave a transfer hanging that long on a
        // database host that vanished without closing its connections.
        config.keepalives_idle(Duration::from_secs(30));
    }
    Ok(config)
}

/// What a database is called in messages: `postgresql://USER@HOST:PORT/DB`, never the password.
pub fn describe_config(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config.get_ports().get(i).or(config.get_ports().first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    let user = config.get_user().unwrap_or("");
    format!("postgresql://{user}@{}/{}", hosts.join(","), config.get_dbname().unwrap_or(user))
}

/// A tree served from a PostgreSQL database; cheap to clone (the connections are shared).
#[derive(Debug, Clone)]
pub struct PgStorage {
    pool: Arc<Pool>,
    target: String,
}

impl PgStorage {
    /// Connects to the database at `url` (see [`parse_url`]) with at most `pool` connections
    /// (`--storage-pool`), creates or migrates the `ft` schema, and removes what crashed TFTP
    /// uploads left. Fails if the database cannot be reached now.
    ///
    /// Each upload in progress holds one of the `pool` connections until it ends (the
    /// connection holds the upload's lock); everything else borrows one for a statement or
    /// two, a download once per 1 MiB. When all are busy a request waits up to 30 s, then
    /// fails as [`StorageError::Unavailable`].
    pub fn connect(url: &str, pool: usize) -> Result<PgStorage, ConnectError> {
        let config = parse_url(url)?;
        let target = describe_config(&config);
        let pool = Pool::new(config, pool);
        let mut conn = pool.get().map_err(|e| ConnectError::Unreachable {
            target: target.clone(),
            reason: match e {
                StorageError::Unavailable(reason) => reason,
                other => other.to_string(),
            },
        })?;
        schema::migrate(&mut conn).map_err(|source| ConnectError::Schema { target: target.clone(), source })?;
        let swept = upload::sweep_private(&mut conn)
            .map_err(|e| ConnectError::Unreachable { target: target.clone(), reason: e.to_string() })?;
        if swept > 0 {
            log::info!("{target}: removed {swept} abandoned TFTP uploads");
        }
        drop(conn);
        Ok(PgStorage { pool, target })
    }

    fn conn(&self) -> Result<Conn, StorageError> {
        self.pool.get()
    }

    /// The entry `path` names: `(id, kind, size, mtime, sha256, content)`.
    fn entry(&self, conn: &mut Conn, path: &VirtualPath) -> Result<Entry, StorageError> {
        let row = conn
            .query_opt_p(
                "SELECT id, kind, size, extract(epoch FROM mtime)::bigint, sha256, content \
                 FROM ft.entries WHERE id = ft.lookup($1::text[])",
                &[&parts(path)],
            )
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        Ok(Entry::from_row(&row))
    }
}

/// One row of `ft.entries`.
#[derive(Debug, Clone)]
struct Entry {
    id: i64,
    kind: Kind,
    size: i64,
    mtime: i64,
    sha256: Option<Vec<u8>>,
    content: Option<i64>,
}

impl Entry {
    fn from_row(row: &postgres::Row) -> Entry {
        Entry {
            id: row.get(0),
            kind: kind_of(row.get(1)),
            size: row.get(2),
            mtime: row.get(3),
            sha256: row.get(4),
            content: row.get(5),
        }
    }

    fn meta(&self) -> Meta {
        Meta { kind: self.kind, len: self.size as u64, modified: Some(self.mtime), mode: None }
    }
}

fn kind_of(kind: &str) -> Kind {
    match kind {
        "d" => Kind::Dir,
        "f" => Kind::File,
        _ => Kind::Other,
    }
}

/// A path as the `text[]` `ft.lookup` takes.
fn parts(path: &VirtualPath) -> Vec<&str> {
    path.components().collect()
}

impl Storage for PgStorage {
    fn describe(&self) -> String {
        self.target.clone()
    }

    fn stat(&self, path: &VirtualPath) -> Result<Meta, StorageError> {
        Ok(self.entry(&mut self.conn()?, path)?.meta())
    }

    fn list(&self, dir: &VirtualPath) -> Result<Vec<(String, Meta)>, StorageError> {
        let rows = self
            .conn()?
            .query_p(
                "WITH d AS (SELECT id, kind FROM ft.entries WHERE id = ft.lookup($1::text[])) \
                 SELECT d.kind, e.name, e.kind, e.size, extract(epoch FROM e.mtime)::bigint \
                 FROM d LEFT JOIN ft.entries e ON e.parent = d.id",
                &[&parts(dir)],
            )
            .map_err(db_error)?;
        let first = rows.first().ok_or(StorageError::NotFound)?;
        if first.get::<_, &str>(0) != "d" {
            return Err(StorageError::NotADirectory);
        }
        let mut entries: Vec<(String, Meta)> = rows
            .iter()
            .filter_map(|row| {
                // An empty directory is one row with no entry (the LEFT JOIN's NULLs).
                let name: String = row.get::<_, Option<String>>(1)?;
                let meta = Meta {
                    kind: kind_of(row.get(2)),
                    len: row.get::<_, i64>(3) as u64,
                    modified: Some(row.get(4)),
                    mode: None,
                };
                Some((name, meta))
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// A directory row is always listable (the database has no per-entry permissions), so
    /// this needs no listing.
    fn require_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        match self.stat(path)? {
            meta if meta.is_dir() => Ok(()),
            _ => Err(StorageError::NotADirectory),
        }
    }

    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<Opened, StorageError> {
        let entry = self.entry(&mut self.conn()?, path)?;
        if entry.kind != Kind::File {
            return Err(StorageError::NotAFile);
        }
        let size = entry.size as u64;
        if offset > size {
            return Err(StorageError::BeyondEnd { offset, size });
        }
        let reader = read::PgReader::new(
            Arc::clone(&self.pool),
            entry.content.unwrap_or_default(),
            size,
            offset,
            entry.sha256.clone(),
            entry.id,
        );
        Ok(Opened { reader: Box::new(reader), meta: entry.meta() })
    }

    fn begin_upload(&self, path: &VirtualPath, spec: UploadSpec) -> Result<Box<dyn Upload>, StorageError> {
        Ok(Box::new(upload::PgUpload::begin(&self.pool, path, spec)?))
    }

    fn begin_unique(&self, path: &VirtualPath, uploader: Uploader) -> Result<Box<dyn Upload>, StorageError> {
        let name = path.file_name().ok_or(StorageError::IsRoot)?;
        let dir = path.parent();
        for i in 0..UNIQUE_TRIES {
            let candidate = if i == 0 { name.to_owned() } else { format!("{name}.{i}") };
            let Ok(candidate) = dir.join(&candidate) else { return Err(StorageError::NameTooLong) };
            if self.stat(&candidate).is_ok() || self.partial_size(&candidate).is_some() {
                continue;
            }
            let spec = UploadSpec { start: super::Start::Fresh, overwrite: false, uploader: uploader.clone() };
            match self.begin_upload(&candidate, spec) {
                Err(StorageError::Exists | StorageError::Busy) => continue,
                other => return other,
            }
        }
        Err(StorageError::NoUniqueName)
    }

    fn partial_size(&self, path: &VirtualPath) -> Option<u64> {
        let name = path.file_name()?;
        let row = self
            .conn()
            .ok()?
            .query_opt_p(
                "SELECT size FROM ft.uploads \
                 WHERE parent = ft.lookup($1::text[]) AND name = $2 AND NOT private",
                &[&parts(&path.parent()), &name],
            )
            .ok()??;
        Some(row.get::<_, i64>(0) as u64)
    }

    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let name = path.file_name().ok_or(StorageError::IsRoot)?;
        let mut conn = self.conn()?;
        let made = conn
            .execute_p(
                "INSERT INTO ft.entries (parent, name, kind) \
                 SELECT id, $2, 'd' FROM ft.entries WHERE id = ft.lookup($1::text[]) AND kind = 'd' \
                 ON CONFLICT (parent, name) DO NOTHING",
                &[&parts(&path.parent()), &name],
            )
            .map_err(|e| if is_foreign_key_violation(&e) { StorageError::NotFound } else { db_error(e) })?;
        if made == 1 {
            return Ok(());
        }
        // Why not: the parent is missing or not a directory, or the name is taken.
        match self.entry(&mut conn, &path.parent())?.kind {
            Kind::Dir => Err(StorageError::AlreadyExists),
            _ => Err(StorageError::NotFound),
        }
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::IsRoot);
        }
        let mut conn = self.conn()?;
        let gone = conn
            .execute_p("DELETE FROM ft.entries WHERE id = ft.lookup($1::text[]) AND kind = 'f'", &[&parts(path)])
            .map_err(db_error)?;
        if gone == 1 {
            return Ok(());
        }
        self.entry(&mut conn, path)?;
        Err(StorageError::NotAFile)
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::IsRoot);
        }
        let mut conn = self.conn()?;
        // Interrupted uploads into the directory go with it (ON DELETE CASCADE); a child
        // created meanwhile makes the foreign key fail, which means "not empty".
        let gone = conn
            .execute_p(
                "DELETE FROM ft.entries d WHERE d.id = ft.lookup($1::text[]) AND d.kind = 'd' \
                 AND NOT EXISTS (SELECT 1 FROM ft.entries c WHERE c.parent = d.id)",
                &[&parts(path)],
            )
            .map_err(|e| if is_foreign_key_violation(&e) { StorageError::DirectoryNotEmpty } else { db_error(e) })?;
        if gone == 1 {
            return Ok(());
        }
        match self.entry(&mut conn, path)?.kind {
            Kind::Dir => Err(StorageError::DirectoryNotEmpty),
            _ => Err(StorageError::NotADirectory),
        }
    }

    fn check_rename_source(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::IsRoot);
        }
        self.stat(path).map(drop)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let name = to.file_name().ok_or(StorageError::IsRoot)?;
        if from.is_root() {
            return Err(StorageError::IsRoot);
        }
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db_error)?;
        let select = "SELECT id, kind, size, extract(epoch FROM mtime)::bigint, sha256, content \
                      FROM ft.entries WHERE id = ft.lookup($1::text[]) FOR UPDATE";
        let source = tx.query_opt(select, &[&parts(from)]).map_err(db_error)?.ok_or(StorageError::NotFound)?;
        let source = Entry::from_row(&source);
        let dir = tx.query_opt(select, &[&parts(&to.parent())]).map_err(db_error)?.ok_or(StorageError::NotFound)?;
        let dir = Entry::from_row(&dir);
        if dir.kind != Kind::Dir {
            return Err(StorageError::NotFound);
        }
        if source.kind == Kind::Dir {
            // A directory cannot move below itself (rename(2) says EINVAL).
            let inside: bool = tx
                .query_one(
                    "WITH RECURSIVE up (id, parent) AS ( \
                         SELECT id, parent FROM ft.entries WHERE id = $1 \
                         UNION ALL SELECT e.id, e.parent FROM ft.entries e JOIN up ON e.id = up.parent) \
                     SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
                    &[&dir.id, &source.id],
                )
                .map_err(db_error)?
                .get(0);
            if inside {
                return Err(StorageError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot move a directory into itself",
                )));
            }
        }
        let existing = tx
            .query_opt(
                "SELECT id, kind, size, extract(epoch FROM mtime)::bigint, sha256, content \
                 FROM ft.entries WHERE parent = $1 AND name = $2 FOR UPDATE",
                &[&dir.id, &name],
            )
            .map_err(db_error)?
            .map(|row| Entry::from_row(&row));
        if let Some(existing) = existing {
            if existing.id == source.id {
                return Ok(());
            }
            match (source.kind, existing.kind) {
                (Kind::Dir, Kind::File) => return Err(StorageError::NotADirectory),
                (Kind::File, Kind::Dir) => {
                    return Err(StorageError::Io(io::Error::from_raw_os_error(nix::libc::EISDIR)));
                }
                _ => {}
            }
            tx.execute(
                "DELETE FROM ft.entries d WHERE d.id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM ft.entries c WHERE c.parent = d.id)",
                &[&existing.id],
            )
            .map_err(|e| if is_foreign_key_violation(&e) { StorageError::DirectoryNotEmpty } else { db_error(e) })
            .and_then(|gone| if gone == 1 { Ok(()) } else { Err(StorageError::DirectoryNotEmpty) })?;
        }
        tx.execute("UPDATE ft.entries SET parent = $1, name = $2 WHERE id = $3", &[&dir.id, &name, &source.id])
            .map_err(|e| if is_unique_violation(&e) { StorageError::AlreadyExists } else { db_error(e) })?;
        tx.commit().map_err(db_error)
    }

    fn free_space(&self, _dir: &VirtualPath) -> Option<u64> {
        None
    }

    fn expire_partials(&self, age: std::time::Duration) -> Result<u64, StorageError> {
        let mut conn = self.conn()?;
        upload::expire(&mut conn, age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_are_described_without_their_password() {
        for (url, described) in [
            ("postgres://ft:pw@db.example:6543/files", "postgresql://ft@db.example:6543/files"),
            ("postgresql://ft@db.example/files?sslmode=disable", "postgresql://ft@db.example:5432/files"),
            ("host=/run/postgresql user=ft dbname=ft password=pw", "postgresql://ft@/run/postgresql/.s.PGSQL.5432/ft"),
            ("host=a,b port=1,2 user=u", "postgresql://u@a:1,b:2/u"),
        ] {
            let config = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(describe_config(&config), described, "{url}");
        }
        for url in ["postgres://u@h:port/db", "postgres://u@h/db?sslmode=require", "user=u dbname=d"] {
            assert!(parse_url(url).is_err_and(|e| e.is_usage()), "{url}");
        }
    }
}
