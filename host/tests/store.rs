//! The versioned store: versions, preconditions, transactions, purge, idempotency, audit,
//! migrations, and durability across `kill -9`.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Instant,
};

use serde_json::{Value, json};
use shadownet_host::store::{DB_FILE, Expect, Store, StoreError, VersionRecord};

/// A store whose clock starts at 1000 ms and advances 1 ms per reading.
fn store() -> Store {
    let mut s = Store::open_in_memory().expect("in-memory store");
    s.set_clock(ticking_clock(1000));
    s
}

fn ticking_clock(start: i64) -> Box<dyn Fn() -> i64 + Send> {
    let now = Arc::new(AtomicI64::new(start));
    Box::new(move || now.fetch_add(1, Ordering::Relaxed))
}

fn put(
    s: &mut Store,
    kind: &str,
    id: &str,
    tenant: &str,
    body: Value,
    expect: Expect,
) -> Result<u64, StoreError> {
    s.transact(|t| t.put(kind, id, tenant, &body, expect, "alice", "change"))
        .map(|m| m.version)
}

/// Everything the store holds that a failed write could have touched.
fn snapshot(s: &Store) -> (u64, Vec<VersionRecord>, u64) {
    (
        s.last_seq().unwrap(),
        s.changes_since(0, usize::MAX).unwrap(),
        s.stored_bytes("t1").unwrap(),
    )
}

#[test]
fn store_is_send() {
    fn send<T: Send>() {}
    send::<Store>();
}

#[test]
fn put_get_list_history_version() {
    let mut s = store();
    assert_eq!(s.last_seq().unwrap(), 0);
    assert!(s.get("network", "a").unwrap().is_none());

    let m = s
        .transact(|t| {
            t.put(
                "network",
                "b",
                "t1",
                &json!({"cidr": "10.0.0.0/24"}),
                Expect::Absent,
                "alice",
                "create b",
            )
        })
        .unwrap();
    assert_eq!(
        (m.seq, m.version, m.created_at_ms, m.deleted),
        (1, 1, 1000, false)
    );
    assert_eq!(
        (m.author.as_str(), m.message.as_str()),
        ("alice", "create b")
    );
    assert_eq!(
        put(
            &mut s,
            "network",
            "a",
            "t2",
            json!({"cidr": "10.1.0.0/24"}),
            Expect::Absent
        )
        .unwrap(),
        1
    );
    assert_eq!(
        put(
            &mut s,
            "network",
            "b",
            "t1",
            json!({"cidr": "10.0.0.0/16"}),
            Expect::Version(1)
        )
        .unwrap(),
        2
    );
    assert_eq!(
        put(&mut s, "shadow", "a", "t1", json!({"of": "b"}), Expect::Any).unwrap(),
        1
    );

    let b = s.get("network", "b").unwrap().unwrap();
    assert_eq!(
        (b.kind.as_str(), b.id.as_str(), b.tenant.as_str(), b.version),
        ("network", "b", "t1", 2)
    );
    assert_eq!(b.body, json!({"cidr": "10.0.0.0/16"}));
    assert_eq!(b.updated_at_ms, 1002);

    let all: Vec<_> = s
        .list("network", None)
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(all, ["a", "b"], "ordered by id, one kind only");
    let t1: Vec<_> = s
        .list("network", Some("t1"))
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(t1, ["b"]);
    assert!(s.list("network", Some("nobody")).unwrap().is_empty());

    let h = s.history("network", "b").unwrap();
    assert_eq!(
        h.iter().map(|m| (m.seq, m.version)).collect::<Vec<_>>(),
        [(1, 1), (3, 2)]
    );
    let v1 = s.version("network", "b", 1).unwrap().unwrap();
    assert_eq!(v1.body, Some(json!({"cidr": "10.0.0.0/24"})));
    assert_eq!(
        (v1.tenant.as_str(), v1.meta.message.as_str()),
        ("t1", "create b")
    );
    assert!(s.version("network", "b", 3).unwrap().is_none());
    assert!(s.version("network", "b", u64::MAX).unwrap().is_none());
    assert_eq!(s.last_seq().unwrap(), 4);
}

#[test]
fn delete_keeps_history_and_recreation_continues_counting() {
    let mut s = store();
    put(&mut s, "network", "n", "t1", json!(1), Expect::Absent).unwrap();
    put(&mut s, "network", "n", "t1", json!(2), Expect::Version(1)).unwrap();
    let d = s
        .transact(|t| t.delete("network", "n", Expect::Version(2), "bob", "gone"))
        .unwrap();
    assert_eq!((d.version, d.deleted, d.author.as_str()), (3, true, "bob"));
    assert!(s.get("network", "n").unwrap().is_none());
    assert!(s.list("network", None).unwrap().is_empty());
    assert_eq!(s.version("network", "n", 3).unwrap().unwrap().body, None);
    assert_eq!(
        s.version("network", "n", 2).unwrap().unwrap().body,
        Some(json!(2))
    );

    // Deleted: a create is allowed again, an update of the old version is not.
    assert!(matches!(
        put(&mut s, "network", "n", "t1", json!(9), Expect::Version(2)),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        put(&mut s, "network", "n", "t1", json!(4), Expect::Absent).unwrap(),
        4
    );
    let h: Vec<_> = s
        .history("network", "n")
        .unwrap()
        .iter()
        .map(|m| (m.version, m.deleted))
        .collect();
    assert_eq!(h, [(1, false), (2, false), (3, true), (4, false)]);
}

#[test]
fn failed_preconditions_change_nothing() {
    let mut s = store();
    put(
        &mut s,
        "network",
        "n",
        "t1",
        json!({"a": 1}),
        Expect::Absent,
    )
    .unwrap();
    put(&mut s, "network", "n", "t1", json!({"a": 2}), Expect::Any).unwrap();
    let before = snapshot(&s);

    match put(
        &mut s,
        "network",
        "n",
        "t1",
        json!({"a": 3}),
        Expect::Absent,
    ) {
        Err(StoreError::Exists { kind, id }) => {
            assert_eq!((kind.as_str(), id.as_str()), ("network", "n"))
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    match put(
        &mut s,
        "network",
        "n",
        "t1",
        json!({"a": 3}),
        Expect::Version(1),
    ) {
        Err(StoreError::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (1, 2)),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(
        put(&mut s, "network", "x", "t1", json!({}), Expect::Version(1)),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.transact(|t| t.delete("network", "x", Expect::Any, "a", "m")),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.transact(|t| t.delete("network", "n", Expect::Version(7), "a", "m")),
        Err(StoreError::Conflict {
            expected: 7,
            found: 2,
            ..
        })
    ));
    assert!(matches!(
        s.transact(|t| t.delete("network", "n", Expect::Absent, "a", "m")),
        Err(StoreError::Exists { .. })
    ));
    match put(&mut s, "network", "n", "t2", json!({}), Expect::Any) {
        Err(e @ StoreError::TenantMismatch { .. }) => {
            assert_eq!(
                e.to_string(),
                r#"network "n" belongs to tenant "t1", not "t2""#
            )
        }
        other => panic!("expected TenantMismatch, got {other:?}"),
    }
    for bad in [("", "n"), ("network", ""), ("network", "a\nb")] {
        assert!(matches!(
            put(&mut s, bad.0, bad.1, "t1", json!({}), Expect::Any),
            Err(StoreError::Invalid(_))
        ));
    }
    assert_eq!(snapshot(&s), before);
    assert_eq!(
        s.get("network", "n").unwrap().unwrap().body,
        json!({"a": 2})
    );
}

#[test]
fn transact_rolls_back_everything_on_error() {
    let mut s = store();
    put(&mut s, "network", "keep", "t1", json!(0), Expect::Absent).unwrap();
    let before = snapshot(&s);

    // The caller's own error after several writes.
    let r: Result<(), StoreError> = s.transact(|t| {
        t.put("network", "a", "t1", &json!(1), Expect::Absent, "a", "m")?;
        t.put(
            "network",
            "keep",
            "t1",
            &json!(2),
            Expect::Version(1),
            "a",
            "m",
        )?;
        t.put_artefact("network", "a", "cap.pcap", b"abc")?;
        t.audit(Some("t1"), "a", "create", "network/a", &json!({}))?;
        t.set_meta("k", "v")?;
        assert_eq!(
            t.get("network", "a")?.map(|o| o.version),
            Some(1),
            "reads see own writes"
        );
        Err(StoreError::Invalid("quota exceeded".into()))
    });
    assert!(matches!(r, Err(StoreError::Invalid(m)) if m == "quota exceeded"));
    // A store error in the middle (the second put fails its precondition).
    let r = s.transact(|t| {
        t.put("network", "b", "t1", &json!(1), Expect::Absent, "a", "m")?;
        t.put("network", "keep", "t1", &json!(3), Expect::Absent, "a", "m")
    });
    assert!(matches!(r, Err(StoreError::Exists { .. })));

    assert_eq!(snapshot(&s), before);
    assert!(s.get("network", "a").unwrap().is_none());
    assert!(s.get("network", "b").unwrap().is_none());
    assert!(s.artefacts("network", "a").unwrap().is_empty());
    assert!(s.audit_log(None, 10).unwrap().is_empty());
    assert_eq!(s.get_meta("k").unwrap(), None);

    // The store is usable afterwards and sequence numbers have no gap.
    let m = s
        .transact(|t| t.put("network", "c", "t1", &json!(1), Expect::Absent, "a", "m"))
        .unwrap();
    assert_eq!(m.seq, before.0 + 1);
}

#[test]
fn purge_removes_versions_and_artefacts() {
    let mut s = store();
    let bodies = [
        json!({"n": "x".repeat(100)}),
        json!({"n": "y"}),
        json!([1, 2, 3]),
    ];
    for (i, b) in bodies.iter().enumerate() {
        put(
            &mut s,
            "shadow",
            "s1",
            "t1",
            b.clone(),
            if i == 0 { Expect::Absent } else { Expect::Any },
        )
        .unwrap();
    }
    put(
        &mut s,
        "network",
        "other",
        "t1",
        json!({"keep": true}),
        Expect::Absent,
    )
    .unwrap();
    put(&mut s, "shadow", "s2", "t2", json!({}), Expect::Absent).unwrap();
    s.transact(|t| {
        t.put_artefact("shadow", "s1", "capture.pcap", &[7u8; 5000])?;
        t.put_artefact("shadow", "s1", "eve.json", b"{\"alert\":1}")?;
        t.put_artefact("shadow", "s1", "eve.json", b"{\"alert\":2}")
    })
    .unwrap();
    assert_eq!(
        s.artefacts("shadow", "s1").unwrap(),
        [
            ("capture.pcap".to_string(), 5000),
            ("eve.json".to_string(), 11)
        ]
    );
    assert_eq!(
        s.artefact("shadow", "s1", "eve.json").unwrap().as_deref(),
        Some(&b"{\"alert\":2}"[..])
    );

    let body_bytes: u64 = bodies.iter().map(|b| b.to_string().len() as u64).sum();
    let other = json!({"keep": true}).to_string().len() as u64;
    assert_eq!(s.stored_bytes("t1").unwrap(), body_bytes + other + 5011);
    let t2_before = s.stored_bytes("t2").unwrap();
    let seq_before = s.last_seq().unwrap();

    let freed = s.transact(|t| t.purge("shadow", "s1")).unwrap();
    assert_eq!(freed, body_bytes + 5011);
    assert_eq!(s.stored_bytes("t1").unwrap(), other);
    assert_eq!(s.stored_bytes("t2").unwrap(), t2_before);
    assert!(s.get("shadow", "s1").unwrap().is_none());
    assert!(s.history("shadow", "s1").unwrap().is_empty());
    assert!(s.version("shadow", "s1", 1).unwrap().is_none());
    assert!(s.artefacts("shadow", "s1").unwrap().is_empty());
    assert_eq!(s.artefact("shadow", "s1", "capture.pcap").unwrap(), None);
    assert_eq!(s.list("shadow", None).unwrap().len(), 1);

    // The change feed says the id is gone, with no content, and numbers keep increasing.
    let feed = s.changes_since(seq_before, 10).unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(
        (
            feed[0].kind.as_str(),
            feed[0].id.as_str(),
            feed[0].tenant.as_str()
        ),
        ("shadow", "s1", "t1")
    );
    assert_eq!(
        (feed[0].meta.seq, feed[0].meta.deleted, feed[0].body.clone()),
        (seq_before + 1, true, None)
    );
    assert!(
        s.changes_since(0, 100)
            .unwrap()
            .iter()
            .all(|r| r.id != "s1" || r.body.is_none())
    );

    // Purging what is not there is an error; the id can be created afresh.
    assert!(matches!(
        s.transact(|t| t.purge("shadow", "s1")),
        Err(StoreError::NotFound { .. })
    ));
    let m = s
        .transact(|t| t.put("shadow", "s1", "t2", &json!({}), Expect::Absent, "a", "m"))
        .unwrap();
    assert_eq!((m.version, m.seq), (1, seq_before + 2));
    // Artefacts need a live object.
    s.transact(|t| t.delete("shadow", "s2", Expect::Any, "a", "m"))
        .unwrap();
    assert!(matches!(
        s.transact(|t| t.put_artefact("shadow", "s2", "x", b"1")),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn revert_writes_an_old_body_as_a_new_version() {
    let mut s = store();
    put(
        &mut s,
        "network",
        "n",
        "t1",
        json!({"v": 1}),
        Expect::Absent,
    )
    .unwrap();
    put(
        &mut s,
        "network",
        "n",
        "t1",
        json!({"v": 2}),
        Expect::Version(1),
    )
    .unwrap();
    let m = s
        .transact(|t| t.revert("network", "n", 1, Expect::Version(2), "ops", "roll back"))
        .unwrap();
    assert_eq!(m.version, 3);
    assert_eq!(
        s.get("network", "n").unwrap().unwrap().body,
        json!({"v": 1})
    );
    s.transact(|t| t.delete("network", "n", Expect::Any, "ops", "rm"))
        .unwrap();
    assert!(matches!(
        s.transact(|t| t.revert("network", "n", 4, Expect::Any, "ops", "x")),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.transact(|t| t.revert("network", "n", 9, Expect::Any, "ops", "x")),
        Err(StoreError::NotFound { .. })
    ));
    // Rolling back a deleted object re-creates it.
    let m = s
        .transact(|t| t.revert("network", "n", 2, Expect::Absent, "ops", "undelete"))
        .unwrap();
    assert_eq!(m.version, 5);
    assert_eq!(
        s.get("network", "n").unwrap().unwrap().body,
        json!({"v": 2})
    );
}

#[test]
fn idempotency_records_and_mismatch() {
    let mut s = store();
    assert_eq!(s.idempotent("t1", "k1").unwrap(), None);
    s.transact(|t| {
        t.put("shadow", "s1", "t1", &json!({}), Expect::Absent, "a", "m")?;
        t.record_idempotent("t1", "k1", "fp-a", 201, &json!({"id": "s1"}))
    })
    .unwrap();
    let r = s.idempotent("t1", "k1").unwrap().unwrap();
    assert_eq!(
        (r.fingerprint.as_str(), r.status, r.created_at_ms),
        ("fp-a", 201, 1001)
    );
    assert_eq!(r.body, json!({"id": "s1"}));
    // Keys are per tenant.
    assert_eq!(s.idempotent("t2", "k1").unwrap(), None);

    let before = snapshot(&s);
    let retry = s.transact(|t| {
        t.put("shadow", "s2", "t1", &json!({}), Expect::Absent, "a", "m")?;
        t.record_idempotent("t1", "k1", "fp-b", 201, &json!({"id": "s2"}))
    });
    assert!(matches!(retry, Err(StoreError::IdempotencyMismatch { key }) if key == "k1"));
    let again = s.transact(|t| t.record_idempotent("t1", "k1", "fp-a", 201, &json!({})));
    assert!(matches!(again, Err(StoreError::Exists { .. })));
    assert_eq!(
        snapshot(&s),
        before,
        "the mismatched request's put was rolled back"
    );
    assert_eq!(
        s.idempotent("t1", "k1").unwrap().unwrap().body,
        json!({"id": "s1"})
    );

    s.transact(|t| t.record_idempotent("t2", "k1", "fp-c", 200, &json!(null)))
        .unwrap();
    assert_eq!(s.transact(|t| t.expire_idempotent(1002)).unwrap(), 1);
    assert_eq!(s.idempotent("t1", "k1").unwrap(), None);
    assert!(s.idempotent("t2", "k1").unwrap().is_some());
}

#[test]
fn audit_log_is_newest_first_and_per_tenant() {
    let mut s = store();
    let seqs = s
        .transact(|t| {
            Ok([
                t.audit(
                    Some("t1"),
                    "alice",
                    "create",
                    "shadow/s1",
                    &json!({"ttl_s": 60}),
                )?,
                t.audit(None, "operator", "reset", "nic/0", &json!(null))?,
                t.audit(Some("t2"), "bob", "delete", "network/n", &json!({}))?,
                t.audit(Some("t1"), "alice", "delete", "shadow/s1", &json!({}))?,
            ])
        })
        .unwrap();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let all = s.audit_log(None, 100).unwrap();
    assert_eq!(
        all.iter().map(|a| a.seq).collect::<Vec<_>>(),
        seqs.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(all[2].tenant, None);
    assert_eq!(
        (
            all[3].actor.as_str(),
            all[3].action.as_str(),
            all[3].object.as_str()
        ),
        ("alice", "create", "shadow/s1")
    );
    assert_eq!(
        (all[3].detail.clone(), all[3].at_ms),
        (json!({"ttl_s": 60}), 1000)
    );
    let t1: Vec<_> = s
        .audit_log(Some("t1"), 100)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(t1, ["delete", "create"]);
    assert_eq!(s.audit_log(None, 2).unwrap().len(), 2);
    assert_eq!(s.audit_log(None, 2).unwrap()[0].seq, seqs[3]);
}

#[test]
fn change_feed_pages_in_order() {
    let mut s = store();
    for i in 0..10 {
        put(
            &mut s,
            "network",
            &format!("n{}", i % 3),
            "t1",
            json!(i),
            Expect::Any,
        )
        .unwrap();
    }
    s.transact(|t| t.delete("network", "n0", Expect::Any, "a", "m"))
        .unwrap();
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let page = s.changes_since(from, 4).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        from = page.last().unwrap().meta.seq;
        seen.extend(page);
    }
    assert_eq!(
        seen.iter().map(|r| r.meta.seq).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<_>>()
    );
    assert_eq!(seen[4].body, Some(json!(4)));
    assert_eq!((seen[10].id.as_str(), seen[10].meta.deleted), ("n0", true));
    assert_eq!(s.last_seq().unwrap(), 11);
}

#[test]
fn meta_settings() {
    let mut s = store();
    assert_eq!(s.get_meta("nic.generation").unwrap(), None);
    s.transact(|t| t.set_meta("nic.generation", "1")).unwrap();
    s.transact(|t| t.set_meta("nic.generation", "2")).unwrap();
    assert_eq!(s.get_meta("nic.generation").unwrap().as_deref(), Some("2"));
}

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    {
        let mut s = Store::open(&root).unwrap();
        assert_eq!(s.path(), Some(root.join(DB_FILE).as_path()));
        assert_eq!(s.schema_version().unwrap(), 3);
        put(
            &mut s,
            "network",
            "n",
            "t1",
            json!({"a": 1}),
            Expect::Absent,
        )
        .unwrap();
        put(
            &mut s,
            "network",
            "n",
            "t1",
            json!({"a": 2}),
            Expect::Version(1),
        )
        .unwrap();
        s.transact(|t| {
            t.put_artefact("network", "n", "r", b"report")?;
            t.record_idempotent("t1", "k", "fp", 201, &json!({}))?;
            t.audit(Some("t1"), "a", "create", "network/n", &json!({}))?;
            t.set_meta("m", "v")
        })
        .unwrap();
    }
    let s = Store::open(&root).unwrap();
    assert_eq!(
        s.get("network", "n").unwrap().unwrap().body,
        json!({"a": 2})
    );
    assert_eq!(s.history("network", "n").unwrap().len(), 2);
    assert_eq!(
        s.artefact("network", "n", "r").unwrap().as_deref(),
        Some(&b"report"[..])
    );
    assert!(s.idempotent("t1", "k").unwrap().is_some());
    assert_eq!(s.audit_log(None, 10).unwrap().len(), 1);
    assert_eq!(s.get_meta("m").unwrap().as_deref(), Some("v"));
    assert_eq!(s.last_seq().unwrap(), 2);
    assert!(s.integrity_check().unwrap().is_empty());

    let conn = rusqlite::Connection::open(root.join(DB_FILE)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn open_reports_an_unusable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match Store::open(&file) {
        Err(e @ StoreError::Io { .. }) => assert!(e.to_string().contains("not-a-dir"), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
    // A file that is not a database: the error names it.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join(DB_FILE), vec![0x55u8; 4096]).unwrap();
    match Store::open(&bad) {
        Err(e @ StoreError::Open { .. }) => assert!(e.to_string().contains(DB_FILE), "{e}"),
        other => panic!("expected Open, got {other:?}"),
    }
}

/// Schema step 1 exactly as released; the store's own copy must never change.
const FROZEN_V1: &str = r#"
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

#[test]
fn migrates_a_v1_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(FROZEN_V1).unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO versions VALUES (1, 'network', 'n', 't1', 1, 10, 'a', 'create', '{"v":1}');
            INSERT INTO versions VALUES (2, 'network', 'n', 't1', 2, 20, 'a', 'update', '{"v":2}');
            INSERT INTO versions VALUES (5, 'shadow', 's', 't1', 1, 30, 'a', 'create', '{}');
            INSERT INTO versions VALUES (6, 'shadow', 's', 't1', 2, 40, 'a', 'delete', NULL);
            INSERT INTO objects VALUES ('network', 'n', 't1', 2, 20);
            INSERT INTO audit (at_ms, tenant, actor, action, object, detail)
                VALUES (10, 't1', 'a', 'create', 'network/n', '{}');
            PRAGMA user_version = 1;
            "#,
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    assert!(s.integrity_check().unwrap().is_empty());
    let n = s.get("network", "n").unwrap().unwrap();
    assert_eq!(
        (n.version, n.body.clone(), n.updated_at_ms),
        (2, json!({"v": 2}), 20)
    );
    assert!(s.get("shadow", "s").unwrap().is_none());
    // The change counter was seeded from the stored versions: no number is reused.
    assert_eq!(s.last_seq().unwrap(), 6);
    let m = s
        .transact(|t| {
            t.put(
                "shadow",
                "s",
                "t1",
                &json!({"again": 1}),
                Expect::Absent,
                "b",
                "m",
            )
        })
        .unwrap();
    assert_eq!((m.seq, m.version), (7, 3));
    // What step 2 added works on the migrated data.
    s.transact(|t| t.put_artefact("network", "n", "report", b"12345"))
        .unwrap();
    assert_eq!(s.stored_bytes("t1").unwrap(), 7 + 7 + 2 + 11 + 5);
    assert_eq!(s.transact(|t| t.purge("network", "n")).unwrap(), 7 + 7 + 5);
    assert_eq!(s.audit_log(Some("t1"), 10).unwrap().len(), 1);
    // What step 3 added works on the migrated data: findings count as stored bytes and go
    // with the object they are attached to.
    let before = s.stored_bytes("t1").unwrap();
    s.transact(|t| t.add_finding("shadow", "s", 50, None, &json!({"f": 1})))
        .unwrap();
    assert_eq!(s.stored_bytes("t1").unwrap(), before + 7);
    assert_eq!(s.findings("t1", None, None, 10).unwrap().len(), 1);
    assert_eq!(s.transact(|t| t.purge("shadow", "s")).unwrap(), 2 + 11 + 7);
    assert!(s.findings("t1", None, None, 10).unwrap().is_empty());
    drop(s);
    // Opening again applies nothing more.
    assert_eq!(
        Store::open(dir.path()).unwrap().schema_version().unwrap(),
        3
    );
}

#[test]
fn refuses_a_database_from_a_newer_binary() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let path = dir.path().join(DB_FILE);
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::TooNew { found, supported }) => assert_eq!((found, supported), (99, 3)),
        other => panic!("expected TooNew, got {other:?}"),
    }
    let v: u32 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99, "the newer database is left as it was");
}

// ---- crash safety ----

const CHILD_ENV: &str = "SHADOWNET_STORE_CRASH_CHILD";

/// The writer the crash test kills: commits puts (and now and then a delete, an artefact and
/// a purge) as fast as it can and prints each acknowledged change after `transact` returned.
/// Runs only when re-executed by `kill_9_loses_no_acknowledged_change`.
#[test]
#[ignore = "child process of kill_9_loses_no_acknowledged_change"]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        eprintln!("{CHILD_ENV} not set: this test only runs as the crash test's child");
        return;
    };
    let mut s = Store::open(std::path::Path::new(&dir)).expect("child opens the store");
    let out = std::io::stdout();
    let mut out = out.lock();
    for i in 0u64..1_000_000 {
        let id = format!("n{}", i % 7);
        let body = json!({"i": i, "pad": "p".repeat((i % 13 * 37) as usize)});
        let (meta, purged) = s
            .transact(|t| {
                let meta = t.put("network", &id, "t1", &body, Expect::Any, "child", "w")?;
                if i % 5 == 0 {
                    t.put_artefact("network", &id, "a", &i.to_le_bytes())?;
                }
                let purged = i % 29 == 28;
                if purged {
                    t.purge("network", &id)?;
                }
                Ok((meta, purged))
            })
            .expect("child commits");
        // Only after transact returned Ok is the change acknowledged.
        writeln!(
            out,
            "ACK {} {} {} {} {}",
            meta.seq, id, meta.version, i, purged
        )
        .unwrap();
        out.flush().unwrap();
    }
}

/// A tiny deterministic generator, seeded per run (the seed is printed on failure).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_loses_no_acknowledged_change() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = seed;
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut total_acked = 0;
    for run in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        // Kill points: before anything is acknowledged (possibly during schema creation),
        // early, and after a few hundred commits.
        let kill_after = match run % 4 {
            0 => 0,
            1 => xorshift(&mut rng) % 5,
            _ => xorshift(&mut rng) % 200,
        };
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        while (acked.len() as u64) < kill_after {
            match lines.next() {
                Some(line) => {
                    let line = line.unwrap();
                    if let Some(ack) = line.strip_prefix("ACK ") {
                        acked.push(ack.to_string());
                    }
                }
                None => panic!("child ended before being killed (seed {seed:#x}, run {run})"),
            }
        }
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        // What the child printed before dying was acknowledged too.
        for line in lines {
            if let Some(ack) = line.unwrap().strip_prefix("ACK ") {
                acked.push(ack.to_string());
            }
        }
        total_acked += acked.len();

        let s = Store::open(dir.path()).unwrap_or_else(|e| {
            panic!("reopen after kill failed: {e} (seed {seed:#x}, run {run})")
        });
        assert!(
            s.integrity_check().unwrap().is_empty(),
            "seed {seed:#x}, run {run}"
        );
        let mut max_seq = 0;
        let mut last_purge: std::collections::HashMap<String, u64> = Default::default();
        for ack in &acked {
            let f: Vec<&str> = ack.split(' ').collect();
            let (seq, id, i, purged): (u64, &str, u64, bool) = (
                f[0].parse().unwrap(),
                f[1],
                f[3].parse().unwrap(),
                f[4] == "true",
            );
            // A purge takes the number after its put's.
            max_seq = max_seq.max(seq + u64::from(purged));
            if purged {
                last_purge.insert(id.to_string(), i);
            }
        }
        // The child commits changes in order, one at a time: the one in flight when it died
        // is the one after the last acknowledged, and it may have committed without being
        // acknowledged. A purge that did (its transaction takes two numbers past the last
        // acknowledged) legitimately removed acknowledged versions of its id.
        let next = acked.last().map_or(0, |ack| {
            ack.split(' ').nth(3).unwrap().parse::<u64>().unwrap() + 1
        });
        let in_flight_purge = next % 29 == 28;
        if in_flight_purge && s.last_seq().unwrap() == max_seq + 2 {
            last_purge.insert(format!("n{}", next % 7), next);
        }
        // Every acknowledged version that no later acknowledged purge removed is there, with
        // its body; purged ids have no trace of the versions before the purge.
        for ack in &acked {
            let f: Vec<&str> = ack.split(' ').collect();
            let (seq, id, version, i) = (
                f[0].parse::<u64>().unwrap(),
                f[1],
                f[2].parse::<u64>().unwrap(),
                f[3].parse::<u64>().unwrap(),
            );
            let v = s.version("network", id, version).unwrap();
            if last_purge.get(id).is_some_and(|&p| i <= p) {
                assert!(
                    v.is_none_or(|v| v.meta.seq != seq),
                    "purged change {ack} still there (seed {seed:#x}, run {run})"
                );
            } else {
                let v = v.unwrap_or_else(|| {
                    panic!(
                        "acknowledged change {ack} lost (seed {seed:#x}, run {run}; change {next} \
                         in flight, last_seq {}, acknowledged up to {max_seq})",
                        s.last_seq().unwrap()
                    )
                });
                assert_eq!(v.meta.seq, seq);
                assert_eq!(v.body.as_ref().and_then(|b| b["i"].as_u64()), Some(i));
            }
        }
        let last = s.last_seq().unwrap();
        // At most the one commit in flight when the child died went unacknowledged; a purge
        // transaction takes two numbers.
        assert!(
            last >= max_seq && last <= max_seq + 2,
            "last_seq {last}, acknowledged {max_seq} (seed {seed:#x}, run {run})"
        );
    }
    assert!(total_acked > 0);
    eprintln!(
        "20 kills, {total_acked} acknowledged commits checked in {:?} (seed {seed:#x})",
        started.elapsed()
    );
}

#[test]
fn integrity_check_reports_a_dangling_object() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        put(&mut s, "network", "n", "t1", json!({}), Expect::Absent).unwrap();
        assert!(s.integrity_check().unwrap().is_empty());
    }
    // Damage done behind the store's back, with the foreign-key checks off.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    conn.execute("DELETE FROM versions", []).unwrap();
    drop(conn);
    let problems = Store::open(dir.path()).unwrap().integrity_check().unwrap();
    assert_eq!(problems, ["objects row 1 refers to a missing versions row"]);
}
