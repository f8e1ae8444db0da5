//! The daemon's durable state: one SQLite file shared by every feature that
//! keeps something across restarts (message batches; stored responses may
//! join them). Each feature describes its tables as a [`Schema`] and installs
//! it once at startup; the store keeps each schema's version in the file, so
//! a newer daemon applies only the migrations the file has not seen.
//!
//! Writes are durable when they return (WAL journal, `synchronous = FULL`):
//! a caller may acknowledge what it wrote. SQLite calls block, so async code
//! goes through [`Store::call`], which runs them on tokio's blocking pool.
//!
//! A write can fail (a full disk: `SQLITE_FULL`); the features that write
//! say so in [`health`], which `/health` and `/metrics` show, and keep what
//! they could not write until they can. [`Store::close`] at a clean stop
//! checkpoints the WAL into the file and removes it.

pub mod health;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// The file name used when no path is configured.
pub const DEFAULT_FILE: &str = "batches.sqlite3";

/// How long a statement waits for a lock held by another connection to the
/// same file (another process, e.g. a backup) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables of one feature. Migrations are SQL scripts applied in order,
/// each in its own transaction; a schema's version is how many have run.
/// Append new scripts, never edit shipped ones.
pub trait Schema {
    /// Unique within the file: the key of the schema's recorded version.
    const NAME: &'static str;
    /// Scripts that create, then evolve, the schema's tables.
    const MIGRATIONS: &'static [&'static str];
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the store's directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the store file {path} private: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("schema `{schema}` in the store is at version {found}, newer than this daemon knows ({known})")]
    TooNew {
        schema: &'static str,
        found: usize,
        known: usize,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: a blocking task failed: {0}")]
    Task(String),
    #[error("store: closed (the daemon is stopping)")]
    Closed,
    /// Writes fail, and as much as may wait in memory for them already does.
    #[error("store: writes fail, and {0} already wait in memory, the most allowed")]
    Backlog(String),
}

/// A handle to the store; clones share one connection, and the report of
/// how writes are going.
#[derive(Clone)]
pub struct Store {
    /// `None` once closed.
    conn: Arc<Mutex<Option<Connection>>>,
    health: Arc<health::StoreHealth>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`, and its directory.
    /// The file is made mode 0600 whatever the umask (SQLite gives its WAL
    /// and shared-memory files the same mode), a new directory 0700; a
    /// directory another user owns or may write is refused.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_fs::ensure_dir(dir).map_err(|source| StoreError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let private = |file: &Path| {
            crate::private_fs::ensure_file(file).map_err(|source| StoreError::File {
                path: file.to_path_buf(),
                source,
            })
        };
        private(path)?;
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let companion = PathBuf::from(name);
            if companion.exists() {
                private(&companion)?;
            }
        }
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // WAL: readers never block the writer; FULL: a commit is on disk
            // when it returns, so what was acknowledged survives a crash.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            Ok(conn)
        };
        let conn = open().map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::with_connection(conn)
    }

    /// A store in memory, gone when the last handle is dropped (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Self::with_connection(conn)
    }

    fn with_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_versions (
                 schema TEXT PRIMARY KEY,
                 version INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS write_probe (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 at INTEGER NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(Some(conn))),
            health: Arc::default(),
        })
    }

    /// How the store's writes are going (`/health`, `/metrics`).
    pub fn health(&self) -> &Arc<health::StoreHealth> {
        &self.health
    }

    /// Writes one row and commits: whether the store takes writes again
    /// after failing, when nothing else is waiting to be written.
    pub fn probe(conn: &Connection) -> rusqlite::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        conn.execute(
            "INSERT INTO write_probe (id, at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            [now],
        )?;
        Ok(())
    }

    /// Closes the connection (a clean stop): SQLite checkpoints the WAL
    /// into the file and removes it, leaving one file. Later calls fail
    /// with [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        match conn {
            Some(conn) => conn.close().map_err(|(_, e)| StoreError::Sql(e)),
            None => Ok(()),
        }
    }

    /// Brings `S`'s tables up to date: applies the migrations the file has
    /// not seen yet. Refuses a file written by a newer daemon.
    pub fn install<S: Schema>(&self) -> Result<(), StoreError> {
        let known = S::MIGRATIONS.len();
        self.with(|conn| {
            let found: usize = conn
                .query_row(
                    "SELECT version FROM schema_versions WHERE schema = ?1",
                    [S::NAME],
                    |row| row.get(0),
                )
                .optional()?
                .unwrap_or(0);
            if found > known {
                return Ok(Err(StoreError::TooNew {
                    schema: S::NAME,
                    found,
                    known,
                }));
            }
            for (i, script) in S::MIGRATIONS.iter().enumerate().skip(found) {
                let tx = conn.transaction()?;
                tx.execute_batch(script)?;
                tx.execute(
                    "INSERT INTO schema_versions (schema, version) VALUES (?1, ?2)
                     ON CONFLICT (schema) DO UPDATE SET version = excluded.version",
                    rusqlite::params![S::NAME, i + 1],
                )?;
                tx.commit()?;
                log::info!("store: schema {} migrated to version {}", S::NAME, i + 1);
            }
            Ok(Ok(()))
        })?
    }

    /// Runs `f` on the connection, blocking the calling thread.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        // A panic while holding the lock left no transaction open (rusqlite
        // rolls back on drop), so the connection is still usable.
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = conn.as_mut().ok_or(StoreError::Closed)?;
        Ok(f(conn)?)
    }

    /// Runs `f` on the connection from async code, on the blocking pool.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.with(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Where the store lives: `configured` if set; else [`DEFAULT_FILE`] in
/// systemd's state directory (`$STATE_DIRECTORY`, its first entry) when the
/// daemon runs under a unit with `StateDirectory=`; else in the working
/// directory.
pub fn resolve_path(configured: Option<&Path>, state_directory: Option<&str>) -> PathBuf {
    if let Some(path) = configured {
        return path.to_path_buf();
    }
    match state_directory
        .and_then(|dirs| dirs.split(':').next())
        .filter(|dir| !dir.is_empty())
    {
        Some(dir) => Path::new(dir).join(DEFAULT_FILE),
        None => PathBuf::from(DEFAULT_FILE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Notes;
    impl Schema for Notes {
        const NAME: &'static str = "notes";
        const MIGRATIONS: &'static [&'static str] =
            &["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"];
    }

    /// `Notes`, one migration later.
    struct NotesV2;
    impl Schema for NotesV2 {
        const NAME: &'static str = "notes";
        const MIGRATIONS: &'static [&'static str] = &[
            Notes::MIGRATIONS[0],
            "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody';",
        ];
    }

    struct Other;
    impl Schema for Other {
        const NAME: &'static str = "other";
        const MIGRATIONS: &'static [&'static str] =
            &["CREATE TABLE other (k TEXT PRIMARY KEY, v TEXT);"];
    }

    fn version(store: &Store, name: &str) -> Option<i64> {
        store
            .with(|c| {
                c.query_row(
                    "SELECT version FROM schema_versions WHERE schema = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
            })
            .unwrap()
    }

    #[test]
    fn schemas_share_a_file_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.sqlite3");
        {
            let store = Store::open(&path).unwrap();
            store.install::<Notes>().unwrap();
            store.install::<Other>().unwrap();
            store
                .with(|c| c.execute("INSERT INTO notes (text) VALUES ('kept')", []))
                .unwrap();
            store
                .with(|c| c.execute("INSERT INTO other VALUES ('a', 'b')", []))
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        // Installing again applies nothing twice (a second CREATE would fail).
        store.install::<Notes>().unwrap();
        store.install::<Other>().unwrap();
        let text: String = store
            .with(|c| c.query_row("SELECT text FROM notes", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(text, "kept");
        assert_eq!(version(&store, "notes"), Some(1));
        assert_eq!(version(&store, "other"), Some(1));
    }

    #[test]
    fn the_file_its_journal_and_a_new_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.sqlite3");
        let store = Store::open(&path).unwrap();
        store.install::<Notes>().unwrap();
        store
            .with(|c| c.execute("INSERT INTO notes (text) VALUES ('secret')", []))
            .unwrap();
        assert_eq!(mode(&dir.path().join("nested")), 0o700);
        for file in ["state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"] {
            assert_eq!(mode(&dir.path().join("nested").join(file)), 0o600, "{file}");
        }
        // A file an earlier version left readable is made private.
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn only_new_migrations_run_and_a_newer_file_is_refused() {
        let store = Store::in_memory().unwrap();
        store.install::<Notes>().unwrap();
        store
            .with(|c| c.execute("INSERT INTO notes (text) VALUES ('old')", []))
            .unwrap();
        store.install::<NotesV2>().unwrap();
        assert_eq!(version(&store, "notes"), Some(2));
        let author: String = store
            .with(|c| c.query_row("SELECT author FROM notes", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(author, "nobody", "existing rows were migrated, not lost");
        let err = store.install::<Notes>().unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::TooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_failed_migration_leaves_the_version_alone() {
        struct Broken;
        impl Schema for Broken {
            const NAME: &'static str = "broken";
            const MIGRATIONS: &'static [&'static str] =
                &["CREATE TABLE fine (x); CREATE TABLE fine (x);"];
        }
        let store = Store::in_memory().unwrap();
        assert!(store.install::<Broken>().is_err());
        assert_eq!(version(&store, "broken"), None);
        let tables: i64 = store
            .with(|c| {
                c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'fine'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(tables, 0, "the migration's transaction was rolled back");
    }

    #[tokio::test]
    async fn async_calls_run_on_the_blocking_pool() {
        let store = Store::in_memory().unwrap();
        store.install::<Other>().unwrap();
        store
            .call(|c| c.execute("INSERT INTO other VALUES ('k', 'v')", []))
            .await
            .unwrap();
        let v: String = store
            .call(|c| c.query_row("SELECT v FROM other WHERE k = 'k'", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(v, "v");
    }

    #[test]
    fn closing_checkpoints_the_wal_and_leaves_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        let store = Store::open(&path).unwrap();
        store.install::<Notes>().unwrap();
        store
            .with(|c| c.execute("INSERT INTO notes (text) VALUES ('kept')", []))
            .unwrap();
        let wal = dir.path().join("state.sqlite3-wal");
        assert!(wal.exists(), "a WAL while open");
        let other = store.clone();
        store.close().unwrap();
        assert!(!wal.exists(), "no -wal after close");
        assert!(!dir.path().join("state.sqlite3-shm").exists());
        assert!(matches!(
            other.with(|c| c.execute("DELETE FROM notes", [])),
            Err(StoreError::Closed)
        ));
        let text: String = Store::open(&path)
            .unwrap()
            .with(|c| c.query_row("SELECT text FROM notes", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(text, "kept");
    }

    #[test]
    fn the_path_follows_config_then_state_directory_then_cwd() {
        let configured = Path::new("/srv/pool.db");
        assert_eq!(
            resolve_path(Some(configured), Some("/var/lib/x")),
            configured
        );
        assert_eq!(
            resolve_path(None, Some("/var/lib/claude-pool:/var/lib/other")),
            Path::new("/var/lib/claude-pool/batches.sqlite3")
        );
        assert_eq!(resolve_path(None, Some("")), Path::new(DEFAULT_FILE));
        assert_eq!(resolve_path(None, None), Path::new(DEFAULT_FILE));
    }
}
