//! The store's schema as an ordered list of migration steps.
//!
//! `PRAGMA user_version` holds how many steps a database has applied. A step, once released,
//! is never edited: a database created by an older binary must end up with exactly the schema
//! a new one would create, so changes are always new steps appended at the end. The store's
//! tests keep a frozen copy of step 1 to catch an edit.

/// Step 1: objects, their versions, idempotency keys, the audit log, settings.
///
/// `objects` is the head index (which version of each id is current); the bodies live only in
/// `versions`, so a body is stored once and "stored bytes" is the size of the history.
const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE versions (
    seq           INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    id            TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    created_at_ms INTEGER NOT NULL,
    author        TEXT NOT NULL,
    message       TEXT NOT NULL,
    body          TEXT,
    UNIQUE (kind, id, version)
);
CREATE TABLE objects (
    kind          TEXT NOT NULL,
    id            TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, id),
    FOREIGN KEY (kind, id, version) REFERENCES versions (kind, id, version)
);
CREATE INDEX objects_by_tenant ON objects (kind, tenant, id);
CREATE TABLE idempotency (
    tenant        TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   INTEGER NOT NULL,
    tenant  TEXT,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    object  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
"#;

/// Step 2: artefacts, purges, and per-tenant accounting.
///
/// - `artefacts`: opaque blobs (captures, findings, reports) attached to an object.
/// - The change sequence becomes a counter of its own (`counters.change`) because purging
///   removes version rows: `max(versions.seq)` could then go backwards and a change-feed reader
///   would see a number reused. The counter is seeded from the versions already stored.
/// - `purges` keeps, for the change feed, that an id was purged (kind, id, tenant, when: no
///   body, no artefact), so a reader following the feed learns the object is gone.
/// - Indexes for `stored_bytes` (per tenant) and the per-tenant audit log.
const V2: &str = r#"
CREATE TABLE artefacts (
    kind          TEXT NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    data          BLOB NOT NULL,
    PRIMARY KEY (kind, id, name)
);
CREATE INDEX artefacts_by_tenant ON artefacts (tenant);
CREATE TABLE counters (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) SELECT 'change', coalesce(max(seq), 0) FROM versions;
CREATE TABLE purges (
    seq     INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    tenant  TEXT NOT NULL,
    version INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX versions_by_tenant ON versions (tenant);
CREATE INDEX audit_by_tenant ON audit (tenant, seq);
"#;

/// Step 3: findings and incidents.
///
/// - `findings`: analysis results (Suricata-EVE JSON with the control plane's correlation),
///   attached like artefacts to the object they came from (a shadow), so that purging the
///   shadow purges them; `size` counts against the tenant's stored bytes.
/// - `incidents`: findings grouped per tenant; a row is updated in place as findings join
///   (the body is the whole incident, `state` and `last_ms` are copied out for the queries
///   that pick the open incidents a finding may join).
const V3: &str = r#"
CREATE TABLE findings (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    id            TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,
    incident      INTEGER,
    size          INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX findings_by_owner ON findings (kind, id);
CREATE INDEX findings_by_tenant ON findings (tenant, at_ms);
CREATE TABLE incidents (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  TEXT NOT NULL,
    state   TEXT NOT NULL,
    last_ms INTEGER NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX incidents_by_tenant ON incidents (tenant, state, id);
"#;

/// The migration steps, in order; step `i` (0-based) takes a database to `user_version` `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this binary creates and understands.
pub(super) const LATEST: u32 = MIGRATIONS.len() as u32;
