//! The control plane's versioned store: embedded SQLite, every change kept.
//!
//! The store is generic over what it keeps: an object is a `(kind, id)` owned by a tenant with
//! a JSON body. Every put or delete writes a new, immutable version; the current object is the
//! newest version unless that is a deletion. Around the objects the store keeps what the API
//! needs to be safe to retry and to account for: idempotency records, an audit log, per-tenant
//! stored bytes, opaque artefacts attached to objects, and a global change feed.
//!
//! # Durability
//!
//! The database is one file, `shadownet.db`, in write-ahead-log mode with
//! `synchronous=FULL`: when [`Store::transact`] returns `Ok`, the commit is in the log and the
//! log is synced, so a `kill -9` of the daemon or a power loss right after loses nothing that
//! was acknowledged. On `Err` nothing of the transaction is written.
//!
//! # Schema
//!
//! The schema is an ordered list of migration steps tracked with `PRAGMA user_version`; each
//! step is applied in its own transaction when the database is opened. A database written by
//! a newer binary (more steps than this one knows) is refused with [`StoreError::TooNew`]
//! rather than misread.

mod schema;

use std::{
    fmt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

/// Name of the database file inside the store's directory.
pub const DB_FILE: &str = "shadownet.db";

/// How long a statement waits for another connection's lock (a CLI reading the same file)
/// before failing with "database is locked".
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed on an open store.
    #[error("store database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database at `path` could not be opened, set up or migrated.
    #[error("store database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        source: rusqlite::Error,
    },
    /// A stored JSON document could not be encoded or decoded.
    #[error("store JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The store's directory could not be created.
    #[error("store directory {}: {source}", path.display())]
    Io {
        /// The directory or file concerned.
        path: PathBuf,
        /// What the system reported.
        source: std::io::Error,
    },
    /// The caller abandoned the transaction (its own checks failed); nothing was written.
    #[error("the transaction was abandoned by its caller")]
    Aborted,
    /// A precondition on the object's version failed (optimistic concurrency).
    #[error("{kind} {id:?} is at version {found}, not the expected {expected}")]
    Conflict {
        /// The object's kind.
        kind: String,
        /// The object's id.
        id: String,
        /// The version the caller based its change on.
        expected: u64,
        /// The object's current version.
        found: u64,
    },
    /// The object does not exist (or is deleted).
    #[error("{kind} {id:?} does not exist")]
    NotFound {
        /// The object's kind.
        kind: String,
        /// The object's id.
        id: String,
    },
    /// The object exists although the caller required it to be absent.
    #[error("{kind} {id:?} already exists")]
    Exists {
        /// The object's kind.
        kind: String,
        /// The object's id.
        id: String,
    },
    /// The id's history belongs to another tenant: an id is never shared between tenants,
    /// even after a deletion, so that one tenant's history never shows in another's.
    #[error("{kind} {id:?} belongs to tenant {owner:?}, not {tenant:?}")]
    TenantMismatch {
        /// The object's kind.
        kind: String,
        /// The object's id.
        id: String,
        /// The tenant that owns the id's history.
        owner: String,
        /// The tenant the caller wrote for.
        tenant: String,
    },
    /// The database was written by a newer binary.
    #[error("store schema version {found} is newer than this binary supports ({supported})")]
    TooNew {
        /// The database's schema version.
        found: u32,
        /// The newest schema version this binary knows.
        supported: u32,
    },
    /// An idempotency key was reused for a different request.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyMismatch {
        /// The key.
        key: String,
    },
    /// An argument is not acceptable (empty kind or id, a version out of range, ...).
    #[error("invalid store request: {0}")]
    Invalid(String),
}

/// A precondition of a put or a delete, checked inside the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No precondition (a delete still needs the object to exist).
    Any,
    /// The object must not exist (it may have existed and been deleted): a create.
    Absent,
    /// The object must exist at exactly this version: an update based on what was read.
    Version(u64),
}

/// The current version of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// The object's kind ("network", "shadow", ...).
    pub kind: String,
    /// The object's id, unique within its kind.
    pub id: String,
    /// The tenant owning the object.
    pub tenant: String,
    /// The current version (1 for a new object).
    pub version: u64,
    /// The body of the current version.
    pub body: Value,
    /// When the current version was written (unix milliseconds).
    pub updated_at_ms: i64,
}

/// What is known about one version of an object, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionMeta {
    /// Position in the global change sequence (see [`Store::changes_since`]).
    pub seq: u64,
    /// The version number, counting from 1 per `(kind, id)`.
    pub version: u64,
    /// When the version was written (unix milliseconds).
    pub created_at_ms: i64,
    /// Who wrote it.
    pub author: String,
    /// Why (a commit message).
    pub message: String,
    /// Whether this version is a deletion.
    pub deleted: bool,
}

/// One version of an object, with its body.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRecord {
    /// Sequence, version, time, author, message.
    pub meta: VersionMeta,
    /// The object's kind.
    pub kind: String,
    /// The object's id.
    pub id: String,
    /// The tenant owning the object.
    pub tenant: String,
    /// The body; `None` for a deletion (or, in the change feed, a purge).
    pub body: Option<Value>,
}

/// The response recorded for an idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct IdemRecord {
    /// Fingerprint of the request that used the key first.
    pub fingerprint: String,
    /// The status the request was answered with.
    pub status: u16,
    /// The body it was answered with.
    pub body: Value,
    /// When it was recorded (unix milliseconds).
    pub created_at_ms: i64,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the audit log (increasing).
    pub seq: u64,
    /// When (unix milliseconds).
    pub at_ms: i64,
    /// The tenant concerned; `None` for operator-level actions.
    pub tenant: Option<String>,
    /// Who acted.
    pub actor: String,
    /// What was done ("create", "delete", ...).
    pub action: String,
    /// What it was done to ("shadow/s1", ...).
    pub object: String,
    /// Anything else worth keeping.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// A stored finding.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingRecord {
    /// Sequence number (increasing in arrival order).
    pub seq: u64,
    /// Kind of the object it is attached to.
    pub kind: String,
    /// Id of that object.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Event time, unix milliseconds.
    pub at_ms: i64,
    /// The incident it was grouped into.
    pub incident: Option<u64>,
    /// The finding.
    pub body: Value,
}

/// A stored incident.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentRecord {
    /// Id (unique across tenants).
    pub id: u64,
    /// Owning tenant.
    pub tenant: String,
    /// State as the body has it.
    pub state: String,
    /// Time of its last finding, unix milliseconds.
    pub last_ms: i64,
    /// The incident.
    pub body: Value,
}

/// The source of "now" in unix milliseconds; replaceable so tests control time.
pub type Clock = Box<dyn Fn() -> i64 + Send>;

/// Makes the directory entry of a newly created database file durable: SQLite syncs the
/// directory when it creates the write-ahead log, not when it creates the database file.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The versioned store: one SQLite connection.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    clock: Clock,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`: the directory, the database file
    /// `dir/shadownet.db` in WAL mode with `synchronous=FULL` and foreign keys on, then
    /// applies pending migrations.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Without WAL (a file system without shared memory, say) commits would still be
            // durable with a rollback journal, but readers would block the daemon; refuse
            // rather than run in a mode nobody tested.
            return Err(StoreError::Open {
                path,
                source: rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode is {mode}, WAL could not be enabled"
                )),
            });
        }
        sync_dir(dir)?;
        let mut store = Store {
            conn,
            path: Some(path),
            clock: Box::new(system_clock),
        };
        store.setup().map_err(|e| store.with_path(e))?;
        tracing::info!(path = %dir.display(), schema = schema::LATEST, "store opened");
        Ok(store)
    }

    /// Opens a store that lives in memory only (tests, dry runs).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let mut store = Store {
            conn: Connection::open_in_memory()?,
            path: None,
            clock: Box::new(system_clock),
        };
        store.setup()?;
        Ok(store)
    }

    /// Connection settings and migrations common to both kinds of store.
    fn setup(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.migrate()
    }

    /// Puts the database path into SQLite errors raised while opening.
    fn with_path(&self, e: StoreError) -> StoreError {
        match (e, &self.path) {
            (StoreError::Sqlite(source), Some(path)) => StoreError::Open {
                path: path.clone(),
                source,
            },
            (e, _) => e,
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > schema::LATEST {
            return Err(StoreError::TooNew {
                found,
                supported: schema::LATEST,
            });
        }
        for (step, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let to = step as u32 + 1;
            // IMMEDIATE: two processes opening a fresh database at once must not both apply
            // the step; the second waits, then sees the new user_version and skips it.
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now >= to {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", to)?;
            tx.commit()?;
            tracing::info!(from = to - 1, to, "store schema migrated");
        }
        Ok(())
    }

    /// Replaces the clock that timestamps versions, audit entries and idempotency records.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The database's schema version (the number of migration steps applied).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Checks the database: SQLite's page-level integrity check, then that every current
    /// object points at a stored version (the foreign keys). Returns the problems found,
    /// empty when the database is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let row = row?;
            if row != "ok" {
                problems.push(row);
            }
        }
        let mut stmt = self.conn.prepare("PRAGMA foreign_key_check")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (table, rowid, parent) = row?;
            problems.push(format!(
                "{table} row {} refers to a missing {parent} row",
                rowid.map_or_else(|| "?".into(), |r| r.to_string())
            ));
        }
        Ok(problems)
    }

    /// Runs `f` in one SQLite transaction and commits if it returns `Ok`.
    ///
    /// All writes go through here; on `Err` (from `f` or from the commit) nothing is written.
    /// The transaction takes the write lock at its start, so the reads inside `f` see the
    /// state its writes apply to.
    pub fn transact<T>(
        &mut self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut txn = Txn {
            tx,
            clock: &self.clock,
        };
        let value = f(&mut txn)?;
        txn.tx.commit()?;
        Ok(value)
    }

    /// The current version of an object; `None` if it never existed or is deleted.
    pub fn get(&self, kind: &str, id: &str) -> Result<Option<Object>, StoreError> {
        get(&self.conn, kind, id)
    }

    /// The current objects of a kind, optionally of one tenant only, ordered by id.
    pub fn list(&self, kind: &str, tenant: Option<&str>) -> Result<Vec<Object>, StoreError> {
        list(&self.conn, kind, tenant)
    }

    /// Every version of an object, oldest first (empty if the id never existed or was
    /// purged).
    pub fn history(&self, kind: &str, id: &str) -> Result<Vec<VersionMeta>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, version, created_at_ms, author, message, body IS NULL
             FROM versions WHERE kind = ?1 AND id = ?2 ORDER BY version",
        )?;
        let rows = stmt.query_map(params![kind, id], |r| version_meta(r, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One version of an object, with its body (`None` for a deletion version).
    pub fn version(
        &self,
        kind: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<VersionRecord>, StoreError> {
        version_record(&self.conn, kind, id, version)
    }

    /// The global change feed: changes with a sequence number greater than `seq`, in order,
    /// at most `limit`. A purge appears as one record with no body and `deleted` set; the
    /// versions it removed no longer appear.
    pub fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<VersionRecord>, StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, version, created_at_ms, author, message, deleted, kind, id, tenant, body
             FROM (
                SELECT seq, version, created_at_ms, author, message, body IS NULL AS deleted,
                       kind, id, tenant, body
                FROM versions WHERE seq > ?1
                UNION ALL
                SELECT seq, version, at_ms, '', 'purged', 1, kind, id, tenant, NULL
                FROM purges WHERE seq > ?1
             ) ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![seq, limit], |r| {
            Ok((
                version_meta(r, 0)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (meta, kind, id, tenant, body) = row?;
            out.push(VersionRecord {
                meta,
                kind,
                id,
                tenant,
                body: body.map(|b| serde_json::from_str(&b)).transpose()?,
            });
        }
        Ok(out)
    }

    /// The sequence number of the newest change (0 for an empty store).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        last_seq(&self.conn)
    }

    /// The response recorded for an idempotency key of a tenant.
    pub fn idempotent(&self, tenant: &str, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        idempotent(&self.conn, tenant, key)
    }

    /// The audit log, newest first, at most `limit` entries; of one tenant, or all.
    pub fn audit_log(
        &self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at_ms, tenant, actor, action, object, detail FROM audit
             WHERE ?1 IS NULL OR tenant = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at_ms, tenant, actor, action, object, detail) = row?;
            out.push(AuditRecord {
                seq: seq as u64,
                at_ms,
                tenant,
                actor,
                action,
                object,
                detail: serde_json::from_str(&detail)?,
            });
        }
        Ok(out)
    }

    /// Bytes a tenant stores: the bodies of all versions of its objects (history included)
    /// and its artefacts. This is what a storage quota is checked against.
    pub fn stored_bytes(&self, tenant: &str) -> Result<u64, StoreError> {
        stored_bytes(&self.conn, tenant)
    }

    /// A setting stored with [`Txn::set_meta`].
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        get_meta(&self.conn, key)
    }

    /// The artefacts attached to an object: names and sizes in bytes, ordered by name.
    pub fn artefacts(&self, kind: &str, id: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, size FROM artefacts WHERE kind = ?1 AND id = ?2 ORDER BY name",
        )?;
        let rows = stmt.query_map(params![kind, id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A tenant's findings, oldest first: of one object (`owner` = kind and id) or all, from
    /// event time `since_ms` on, at most `limit`.
    pub fn findings(
        &self,
        tenant: &str,
        owner: Option<(&str, &str)>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        let (kind, id) = owner.unzip();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, kind, id, at_ms, incident, body FROM findings
             WHERE tenant = ?1 AND (?2 IS NULL OR (kind = ?2 AND id = ?3))
               AND (?4 IS NULL OR at_ms >= ?4)
             ORDER BY at_ms, seq LIMIT ?5",
        )?;
        let rows = stmt.query_map(params![tenant, kind, id, since_ms, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, id, at_ms, incident, body) = row?;
            out.push(FindingRecord {
                seq: seq as u64,
                kind,
                id,
                tenant: tenant.to_string(),
                at_ms,
                incident: incident.map(|i| i as u64),
                body: serde_json::from_str(&body)?,
            });
        }
        Ok(out)
    }

    /// A tenant's incidents, by id; only those in `states` when given.
    pub fn incidents(
        &self,
        tenant: &str,
        states: Option<&[&str]>,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        incidents(&self.conn, tenant, states)
    }

    /// One incident of a tenant.
    pub fn incident(&self, tenant: &str, id: u64) -> Result<Option<IncidentRecord>, StoreError> {
        incident(&self.conn, tenant, id)
    }

    /// The content of one artefact.
    pub fn artefact(
        &self,
        kind: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT data FROM artefacts WHERE kind = ?1 AND id = ?2 AND name = ?3",
                params![kind, id, name],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// One write transaction (see [`Store::transact`]).
pub struct Txn<'a> {
    tx: rusqlite::Transaction<'a>,
    clock: &'a Clock,
}

impl fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Txn").finish_non_exhaustive()
    }
}

impl Txn<'_> {
    /// The current version of an object, as this transaction sees it.
    pub fn get(&self, kind: &str, id: &str) -> Result<Option<Object>, StoreError> {
        get(&self.tx, kind, id)
    }

    /// The current objects of a kind, as this transaction sees them, ordered by id.
    pub fn list(&self, kind: &str, tenant: Option<&str>) -> Result<Vec<Object>, StoreError> {
        list(&self.tx, kind, tenant)
    }

    /// One version of an object, as this transaction sees it.
    pub fn version(
        &self,
        kind: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<VersionRecord>, StoreError> {
        version_record(&self.tx, kind, id, version)
    }

    /// The response recorded for an idempotency key, as this transaction sees it.
    pub fn idempotent(&self, tenant: &str, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        idempotent(&self.tx, tenant, key)
    }

    /// Bytes a tenant stores, this transaction's writes included (for quota checks before
    /// commit).
    pub fn stored_bytes(&self, tenant: &str) -> Result<u64, StoreError> {
        stored_bytes(&self.tx, tenant)
    }

    /// Writes a new version of an object: version = previous + 1, starting at 1; the versions
    /// of a deleted then re-created id continue counting. Returns the new version's metadata.
    ///
    /// Fails with [`StoreError::Exists`] (`Expect::Absent` and the object exists),
    /// [`StoreError::NotFound`] (`Expect::Version` and it does not), [`StoreError::Conflict`]
    /// (another version), [`StoreError::TenantMismatch`] (the id is another tenant's); nothing
    /// is written then.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        kind: &str,
        id: &str,
        tenant: &str,
        body: &Value,
        expect: Expect,
        author: &str,
        message: &str,
    ) -> Result<VersionMeta, StoreError> {
        check_name("kind", kind)?;
        check_name("id", id)?;
        check_name("tenant", tenant)?;
        let head = head(&self.tx, kind, id)?;
        if let Some(h) = &head
            && h.tenant != tenant
        {
            return Err(StoreError::TenantMismatch {
                kind: kind.into(),
                id: id.into(),
                owner: h.tenant.clone(),
                tenant: tenant.into(),
            });
        }
        let live = head.as_ref().filter(|h| !h.deleted);
        check_expect(kind, id, live.map(|h| h.version), expect)?;
        let version = head.map_or(1, |h| h.version + 1);
        let body = serde_json::to_string(body)?;
        let meta = self.write_version(kind, id, tenant, version, Some(&body), author, message)?;
        exec(
            &self.tx,
            "INSERT INTO objects (kind, id, tenant, version, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version,
                 updated_at_ms = excluded.updated_at_ms",
            params![kind, id, tenant, version as i64, meta.created_at_ms],
        )?;
        Ok(meta)
    }

    /// Records a deletion version (no body): the object disappears from `get` and `list`, its
    /// history and artefacts stay (until [`Txn::purge`]).
    ///
    /// The object must exist ([`StoreError::NotFound`]); `Expect::Version` must match
    /// ([`StoreError::Conflict`]); `Expect::Absent` contradicts an existing object
    /// ([`StoreError::Exists`]).
    pub fn delete(
        &mut self,
        kind: &str,
        id: &str,
        expect: Expect,
        author: &str,
        message: &str,
    ) -> Result<VersionMeta, StoreError> {
        let Some(h) = head(&self.tx, kind, id)?.filter(|h| !h.deleted) else {
            return Err(not_found(kind, id));
        };
        check_expect(kind, id, Some(h.version), expect)?;
        let meta = self.write_version(kind, id, &h.tenant, h.version + 1, None, author, message)?;
        exec(
            &self.tx,
            "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )?;
        Ok(meta)
    }

    /// Writes, as a new version, the body an earlier version had (a rollback; history keeps
    /// both). `to` must be a version with a body.
    pub fn revert(
        &mut self,
        kind: &str,
        id: &str,
        to: u64,
        expect: Expect,
        author: &str,
        message: &str,
    ) -> Result<VersionMeta, StoreError> {
        let Some(old) = version_record(&self.tx, kind, id, to)? else {
            return Err(StoreError::NotFound {
                kind: kind.into(),
                id: format!("{id}@{to}"),
            });
        };
        let Some(body) = old.body else {
            return Err(StoreError::Invalid(format!(
                "{kind} {id:?} version {to} is a deletion; there is no body to roll back to"
            )));
        };
        self.put(kind, id, &old.tenant, &body, expect, author, message)
    }

    /// Removes an object, every version of it and its artefacts: nothing of its content stays
    /// stored. The change feed gets one purge record (kind, id, tenant, time). Returns the
    /// bytes freed (bodies and artefacts).
    pub fn purge(&mut self, kind: &str, id: &str) -> Result<u64, StoreError> {
        let Some(h) = head(&self.tx, kind, id)? else {
            return Err(not_found(kind, id));
        };
        let bytes: i64 = self.tx.query_row(
            "SELECT (SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM versions
                     WHERE kind = ?1 AND id = ?2)
                  + (SELECT coalesce(sum(size), 0) FROM artefacts WHERE kind = ?1 AND id = ?2)",
            params![kind, id],
            |r| r.get(0),
        )?;
        exec(
            &self.tx,
            "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )?;
        exec(
            &self.tx,
            "DELETE FROM versions WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )?;
        exec(
            &self.tx,
            "DELETE FROM artefacts WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )?;
        let findings: i64 = self.tx.query_row(
            "SELECT coalesce(sum(size), 0) FROM findings WHERE kind = ?1 AND id = ?2",
            params![kind, id],
            |r| r.get(0),
        )?;
        exec(
            &self.tx,
            "DELETE FROM findings WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )?;
        let bytes = bytes + findings;
        let seq = next_seq(&self.tx)?;
        let now = (self.clock)();
        exec(
            &self.tx,
            "INSERT INTO purges (seq, kind, id, tenant, version, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![seq, kind, id, h.tenant, h.version as i64, now],
        )?;
        Ok(bytes as u64)
    }

    /// Attaches an artefact to an existing object, replacing one of the same name.
    pub fn put_artefact(
        &mut self,
        kind: &str,
        id: &str,
        name: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        check_name("artefact name", name)?;
        let Some(obj) = head(&self.tx, kind, id)?.filter(|h| !h.deleted) else {
            return Err(not_found(kind, id));
        };
        let now = (self.clock)();
        exec(
            &self.tx,
            "INSERT INTO artefacts (kind, id, name, tenant, size, created_at_ms, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (kind, id, name) DO UPDATE SET size = excluded.size,
                 created_at_ms = excluded.created_at_ms, data = excluded.data",
            params![kind, id, name, obj.tenant, data.len() as i64, now, data],
        )?;
        Ok(())
    }

    /// Stores a finding attached to an existing object (its shadow); returns its sequence
    /// number.
    pub fn add_finding(
        &mut self,
        kind: &str,
        id: &str,
        at_ms: i64,
        incident: Option<u64>,
        body: &Value,
    ) -> Result<u64, StoreError> {
        let Some(obj) = head(&self.tx, kind, id)?.filter(|h| !h.deleted) else {
            return Err(not_found(kind, id));
        };
        let text = serde_json::to_string(body)?;
        exec(
            &self.tx,
            "INSERT INTO findings (kind, id, tenant, at_ms, incident, size, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                kind,
                id,
                obj.tenant,
                at_ms,
                incident.map(|i| i as i64),
                text.len() as i64,
                text
            ],
        )?;
        Ok(self.tx.last_insert_rowid() as u64)
    }

    /// Writes an incident: a new one (`id` = `None`; returns the id given to it) or a new
    /// content for an existing one of the same tenant.
    pub fn put_incident(
        &mut self,
        id: Option<u64>,
        tenant: &str,
        state: &str,
        last_ms: i64,
        body: &Value,
    ) -> Result<u64, StoreError> {
        check_name("tenant", tenant)?;
        let text = serde_json::to_string(body)?;
        match id {
            None => {
                exec(
                    &self.tx,
                    "INSERT INTO incidents (tenant, state, last_ms, body) VALUES (?1, ?2, ?3, ?4)",
                    params![tenant, state, last_ms, text],
                )?;
                Ok(self.tx.last_insert_rowid() as u64)
            }
            Some(i) => {
                let n = exec(
                    &self.tx,
                    "UPDATE incidents SET state = ?3, last_ms = ?4, body = ?5
                     WHERE id = ?1 AND tenant = ?2",
                    params![i as i64, tenant, state, last_ms, text],
                )?;
                if n == 0 {
                    return Err(not_found("incident", &i.to_string()));
                }
                Ok(i)
            }
        }
    }

    /// A tenant's incidents as this transaction sees them (see [`Store::incidents`]).
    pub fn incidents(
        &self,
        tenant: &str,
        states: Option<&[&str]>,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        incidents(&self.tx, tenant, states)
    }

    /// One incident as this transaction sees it.
    pub fn incident(&self, tenant: &str, id: u64) -> Result<Option<IncidentRecord>, StoreError> {
        incident(&self.tx, tenant, id)
    }

    /// Removes one artefact; returns whether it existed.
    pub fn delete_artefact(
        &mut self,
        kind: &str,
        id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        Ok(exec(
            &self.tx,
            "DELETE FROM artefacts WHERE kind = ?1 AND id = ?2 AND name = ?3",
            params![kind, id, name],
        )? > 0)
    }

    /// Records the response to a request carrying an idempotency key.
    ///
    /// A key is recorded once: reusing it with another fingerprint is
    /// [`StoreError::IdempotencyMismatch`]; with the same fingerprint it is
    /// [`StoreError::Exists`] (the caller should have answered from [`Txn::idempotent`]
    /// instead of executing the request again).
    pub fn record_idempotent(
        &mut self,
        tenant: &str,
        key: &str,
        fingerprint: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), StoreError> {
        check_name("idempotency key", key)?;
        if let Some(old) = idempotent(&self.tx, tenant, key)? {
            return Err(if old.fingerprint == fingerprint {
                StoreError::Exists {
                    kind: "idempotency key".into(),
                    id: key.into(),
                }
            } else {
                StoreError::IdempotencyMismatch { key: key.into() }
            });
        }
        let now = (self.clock)();
        exec(
            &self.tx,
            "INSERT INTO idempotency (tenant, key, fingerprint, status, body, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                tenant,
                key,
                fingerprint,
                status,
                serde_json::to_string(body)?,
                now
            ],
        )?;
        Ok(())
    }

    /// Forgets idempotency records created before `before_ms`; returns how many.
    pub fn expire_idempotent(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(exec(
            &self.tx,
            "DELETE FROM idempotency WHERE created_at_ms < ?1",
            params![before_ms],
        )? as u64)
    }

    /// Appends to the audit log; returns the entry's sequence number.
    pub fn audit(
        &mut self,
        tenant: Option<&str>,
        actor: &str,
        action: &str,
        object: &str,
        detail: &Value,
    ) -> Result<u64, StoreError> {
        let now = (self.clock)();
        exec(
            &self.tx,
            "INSERT INTO audit (at_ms, tenant, actor, action, object, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now,
                tenant,
                actor,
                action,
                object,
                serde_json::to_string(detail)?
            ],
        )?;
        Ok(self.tx.last_insert_rowid() as u64)
    }

    /// Stores a setting (replacing the previous value).
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        exec(
            &self.tx,
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// A setting, as this transaction sees it.
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        get_meta(&self.tx, key)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_version(
        &mut self,
        kind: &str,
        id: &str,
        tenant: &str,
        version: u64,
        body: Option<&str>,
        author: &str,
        message: &str,
    ) -> Result<VersionMeta, StoreError> {
        let seq = next_seq(&self.tx)?;
        let now = (self.clock)();
        exec(
            &self.tx,
            "INSERT INTO versions
                 (seq, kind, id, tenant, version, created_at_ms, author, message, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                seq,
                kind,
                id,
                tenant,
                version as i64,
                now,
                author,
                message,
                body
            ],
        )?;
        Ok(VersionMeta {
            seq: seq as u64,
            version,
            created_at_ms: now,
            author: author.into(),
            message: message.into(),
            deleted: body.is_none(),
        })
    }
}

/// The newest version of an id, deleted or not.
struct Head {
    tenant: String,
    version: u64,
    deleted: bool,
}

fn head(conn: &Connection, kind: &str, id: &str) -> Result<Option<Head>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT tenant, version, body IS NULL FROM versions
         WHERE kind = ?1 AND id = ?2 ORDER BY version DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row(params![kind, id], |r| {
            Ok(Head {
                tenant: r.get(0)?,
                version: r.get::<_, i64>(1)? as u64,
                deleted: r.get(2)?,
            })
        })
        .optional()?)
}

fn check_expect(kind: &str, id: &str, live: Option<u64>, expect: Expect) -> Result<(), StoreError> {
    match (expect, live) {
        (Expect::Any, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Absent, Some(_)) => Err(StoreError::Exists {
            kind: kind.into(),
            id: id.into(),
        }),
        (Expect::Version(_), None) => Err(not_found(kind, id)),
        (Expect::Version(expected), Some(found)) if expected == found => Ok(()),
        (Expect::Version(expected), Some(found)) => Err(StoreError::Conflict {
            kind: kind.into(),
            id: id.into(),
            expected,
            found,
        }),
    }
}

fn not_found(kind: &str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind: kind.into(),
        id: id.into(),
    }
}

fn check_name(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::Invalid(format!("{what} is empty")));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} {value:?} contains a control character"
        )));
    }
    Ok(())
}

/// Runs a statement kept prepared: the write path's statements are parsed once per connection,
/// not once per call.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// Takes the next number of the change sequence (shared by versions and purges).
fn next_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE counters SET value = value + 1 WHERE name = 'change' RETURNING value",
        )?
        .query_row([], |r| r.get(0))?)
}

fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let v: i64 = conn.query_row(
        "SELECT value FROM counters WHERE name = 'change'",
        [],
        |r| r.get(0),
    )?;
    Ok(v as u64)
}

fn version_meta(r: &Row<'_>, at: usize) -> rusqlite::Result<VersionMeta> {
    Ok(VersionMeta {
        seq: r.get::<_, i64>(at)? as u64,
        version: r.get::<_, i64>(at + 1)? as u64,
        created_at_ms: r.get(at + 2)?,
        author: r.get(at + 3)?,
        message: r.get(at + 4)?,
        deleted: r.get(at + 5)?,
    })
}

fn get(conn: &Connection, kind: &str, id: &str) -> Result<Option<Object>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.tenant, o.version, o.updated_at_ms, v.body
         FROM objects o JOIN versions v USING (kind, id, version)
         WHERE o.kind = ?1 AND o.id = ?2",
    )?;
    let row = stmt
        .query_row(params![kind, id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    row.map(|(tenant, version, updated_at_ms, body)| {
        Ok(Object {
            kind: kind.into(),
            id: id.into(),
            tenant,
            version: version as u64,
            body: serde_json::from_str(&body)?,
            updated_at_ms,
        })
    })
    .transpose()
}

fn list(conn: &Connection, kind: &str, tenant: Option<&str>) -> Result<Vec<Object>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.tenant, o.version, o.updated_at_ms, v.body
         FROM objects o JOIN versions v USING (kind, id, version)
         WHERE o.kind = ?1 AND (?2 IS NULL OR o.tenant = ?2) ORDER BY o.id",
    )?;
    let rows = stmt.query_map(params![kind, tenant], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, tenant, version, updated_at_ms, body) = row?;
        out.push(Object {
            kind: kind.into(),
            id,
            tenant,
            version: version as u64,
            body: serde_json::from_str(&body)?,
            updated_at_ms,
        });
    }
    Ok(out)
}

fn version_record(
    conn: &Connection,
    kind: &str,
    id: &str,
    version: u64,
) -> Result<Option<VersionRecord>, StoreError> {
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT seq, version, created_at_ms, author, message, body IS NULL, tenant, body
         FROM versions WHERE kind = ?1 AND id = ?2 AND version = ?3",
    )?;
    let row = stmt
        .query_row(params![kind, id, version], |r| {
            Ok((
                version_meta(r, 0)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?;
    row.map(|(meta, tenant, body)| {
        Ok(VersionRecord {
            meta,
            kind: kind.into(),
            id: id.into(),
            tenant,
            body: body.map(|b| serde_json::from_str(&b)).transpose()?,
        })
    })
    .transpose()
}

fn idempotent(
    conn: &Connection,
    tenant: &str,
    key: &str,
) -> Result<Option<IdemRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT fingerprint, status, body, created_at_ms FROM idempotency
         WHERE tenant = ?1 AND key = ?2",
    )?;
    let row = stmt
        .query_row(params![tenant, key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u16>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    row.map(|(fingerprint, status, body, created_at_ms)| {
        Ok(IdemRecord {
            fingerprint,
            status,
            body: serde_json::from_str(&body)?,
            created_at_ms,
        })
    })
    .transpose()
}

fn stored_bytes(conn: &Connection, tenant: &str) -> Result<u64, StoreError> {
    let bytes: i64 = conn.query_row(
        "SELECT (SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM versions
                 WHERE tenant = ?1)
              + (SELECT coalesce(sum(size), 0) FROM artefacts WHERE tenant = ?1)
              + (SELECT coalesce(sum(size), 0) FROM findings WHERE tenant = ?1)
              + (SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM incidents
                 WHERE tenant = ?1)",
        params![tenant],
        |r| r.get(0),
    )?;
    Ok(bytes as u64)
}

fn incidents(
    conn: &Connection,
    tenant: &str,
    states: Option<&[&str]>,
) -> Result<Vec<IncidentRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, state, last_ms, body FROM incidents WHERE tenant = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![tenant], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, state, last_ms, body) = row?;
        if states.is_some_and(|s| !s.contains(&state.as_str())) {
            continue;
        }
        out.push(IncidentRecord {
            id: id as u64,
            tenant: tenant.to_string(),
            state,
            last_ms,
            body: serde_json::from_str(&body)?,
        });
    }
    Ok(out)
}

fn incident(
    conn: &Connection,
    tenant: &str,
    id: u64,
) -> Result<Option<IncidentRecord>, StoreError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    let row = conn
        .query_row(
            "SELECT state, last_ms, body FROM incidents WHERE id = ?1 AND tenant = ?2",
            params![id, tenant],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(state, last_ms, body)| {
        Ok(IncidentRecord {
            id: id as u64,
            tenant: tenant.to_string(),
            state,
            last_ms,
            body: serde_json::from_str(&body)?,
        })
    })
    .transpose()
}

fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?)
}
