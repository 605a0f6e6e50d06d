//! The difference between desired and actual table state.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;
use shadownet_hw::layout::{
    acl::AclRule,
    map::{MapKey, MapValue},
    mirror_filter::MirrorFilter,
    session::MirrorSession,
    shadow_map::{ShadowMapKey, ShadowMapValue},
    vni::VniEntry,
    vport::VportEntry,
};

use super::{Table, describe::Describe, state::TableState};

/// An entry whose key stays and whose contents change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<K, V> {
    /// The key (or slot, port, session number).
    pub key: K,
    /// What the NIC holds.
    pub old: V,
    /// What it should hold.
    pub new: V,
}

/// The difference of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryDiff<K, V> {
    /// Entries to add: key and entry.
    pub add: Vec<(K, V)>,
    /// Entries to replace in place.
    pub change: Vec<Change<K, V>>,
    /// Entries to remove: key and the entry the NIC holds.
    pub remove: Vec<(K, V)>,
}

impl<K, V> Default for EntryDiff<K, V> {
    fn default() -> Self {
        EntryDiff {
            add: Vec::new(),
            change: Vec::new(),
            remove: Vec::new(),
        }
    }
}

impl<K, V> EntryDiff<K, V> {
    /// Whether the table needs no change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.change.is_empty() && self.remove.is_empty()
    }

    /// How many entries are added, changed and removed.
    pub fn counts(&self) -> Counts {
        Counts {
            added: self.add.len(),
            changed: self.change.len(),
            removed: self.remove.len(),
        }
    }
}

/// Sizes of a diff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Entries added.
    pub added: usize,
    /// Entries replaced in place.
    pub changed: usize,
    /// Entries removed.
    pub removed: usize,
}

impl Counts {
    /// Added + changed + removed.
    pub fn total(&self) -> usize {
        self.added + self.changed + self.removed
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.added += o.added;
        self.changed += o.changed;
        self.removed += o.removed;
    }
}

/// Compares two maps in one ordered walk.
fn diff_maps<K: Ord + Copy, V: PartialEq + Copy>(
    desired: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
) -> EntryDiff<K, V> {
    let mut d = EntryDiff::default();
    let mut want = desired.iter().peekable();
    let mut have = actual.iter().peekable();
    loop {
        match (want.peek(), have.peek()) {
            (Some((wk, wv)), Some((hk, hv))) => match wk.cmp(hk) {
                std::cmp::Ordering::Less => {
                    d.add.push((**wk, **wv));
                    want.next();
                }
                std::cmp::Ordering::Greater => {
                    d.remove.push((**hk, **hv));
                    have.next();
                }
                std::cmp::Ordering::Equal => {
                    if wv != hv {
                        d.change.push(Change {
                            key: **wk,
                            old: **hv,
                            new: **wv,
                        });
                    }
                    want.next();
                    have.next();
                }
            },
            (Some((wk, wv)), None) => {
                d.add.push((**wk, **wv));
                want.next();
            }
            (None, Some((hk, hv))) => {
                d.remove.push((**hk, **hv));
                have.next();
            }
            (None, None) => return d,
        }
    }
}

/// What has to change in every table (and mirror session) for the NIC to hold the desired
/// state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDiff {
    /// Virtual networks by VNI.
    pub vnis: EntryDiff<u32, VniEntry>,
    /// VF bindings by port.
    pub vports: EntryDiff<u16, VportEntry>,
    /// Overlay to substrate map by key.
    pub map: EntryDiff<MapKey, MapValue>,
    /// Production to shadow map by key.
    pub shadow_map: EntryDiff<ShadowMapKey, ShadowMapValue>,
    /// Mirror sessions by number (removing one disables it).
    pub sessions: EntryDiff<u16, MirrorSession>,
    /// ACL rules by slot.
    pub acl: EntryDiff<u32, AclRule>,
    /// Mirror filters by slot.
    pub mirror_filters: EntryDiff<u32, MirrorFilter>,
}

/// What `desired` needs changed in `actual`.
pub fn diff(desired: &TableState, actual: &TableState) -> TableDiff {
    TableDiff {
        vnis: diff_maps(&desired.vnis, &actual.vnis),
        vports: diff_maps(&desired.vports, &actual.vports),
        map: diff_maps(&desired.map, &actual.map),
        shadow_map: diff_maps(&desired.shadow_map, &actual.shadow_map),
        sessions: diff_maps(&desired.sessions, &actual.sessions),
        acl: diff_maps(&desired.acl, &actual.acl),
        mirror_filters: diff_maps(&desired.mirror_filters, &actual.mirror_filters),
    }
}

/// One entry of a readable diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryLine {
    /// The key, slot, port or session.
    pub key: String,
    /// The entry held now (changes and removals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// The entry wanted (additions and changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// The readable diff of one table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// The table.
    pub table: Table,
    /// Entries added.
    pub added: Vec<EntryLine>,
    /// Entries changed in place.
    pub changed: Vec<EntryLine>,
    /// Entries removed.
    pub removed: Vec<EntryLine>,
}

fn label(table: Table, key: String) -> String {
    match table {
        Table::Vni => format!("vni {key}"),
        Table::Vport => format!("vf{key}"),
        Table::Session => format!("session {key}"),
        Table::Acl | Table::MirrorFilter => format!("slot {key}"),
        Table::Map | Table::ShadowMap => key,
    }
}

fn report<K: Describe, V: Describe>(table: Table, d: &EntryDiff<K, V>) -> TableReport {
    let line = |k: &K, old: Option<&V>, new: Option<&V>| EntryLine {
        key: label(table, k.describe()),
        old: old.map(Describe::describe),
        new: new.map(Describe::describe),
    };
    TableReport {
        table,
        added: d.add.iter().map(|(k, v)| line(k, None, Some(v))).collect(),
        changed: d
            .change
            .iter()
            .map(|c| line(&c.key, Some(&c.old), Some(&c.new)))
            .collect(),
        removed: d
            .remove
            .iter()
            .map(|(k, v)| line(k, Some(v), None))
            .collect(),
    }
}

impl TableDiff {
    /// Whether the NIC already holds the desired state.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, c)| c.total() == 0)
    }

    /// Added, changed and removed entries per table, in programming order.
    pub fn counts(&self) -> Vec<(Table, Counts)> {
        vec![
            (Table::Vni, self.vnis.counts()),
            (Table::Vport, self.vports.counts()),
            (Table::Map, self.map.counts()),
            (Table::ShadowMap, self.shadow_map.counts()),
            (Table::Session, self.sessions.counts()),
            (Table::Acl, self.acl.counts()),
            (Table::MirrorFilter, self.mirror_filters.counts()),
        ]
    }

    /// The counts over every table.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for (_, c) in self.counts() {
            t += c;
        }
        t
    }

    /// Every entry of the diff described in words, per table (tables without changes
    /// left out). This is the serde form of the diff.
    pub fn report(&self) -> Vec<TableReport> {
        [
            report(Table::Vni, &self.vnis),
            report(Table::Vport, &self.vports),
            report(Table::Map, &self.map),
            report(Table::ShadowMap, &self.shadow_map),
            report(Table::Session, &self.sessions),
            report(Table::Acl, &self.acl),
            report(Table::MirrorFilter, &self.mirror_filters),
        ]
        .into_iter()
        .filter(|r| !(r.added.is_empty() && r.changed.is_empty() && r.removed.is_empty()))
        .collect()
    }
}

impl Serialize for TableDiff {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report().serialize(s)
    }
}

impl fmt::Display for TableDiff {
    /// A summary line, then one line per entry: `+` added, `~` changed, `-` removed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no differences");
        }
        let t = self.total();
        write!(
            f,
            "{} added, {} changed, {} removed",
            t.added, t.changed, t.removed
        )?;
        for r in self.report() {
            for e in &r.added {
                write!(
                    f,
                    "\n  {} + {}: {}",
                    r.table,
                    e.key,
                    e.new.as_deref().unwrap_or("")
                )?;
            }
            for e in &r.changed {
                write!(
                    f,
                    "\n  {} ~ {}: {} -> {}",
                    r.table,
                    e.key,
                    e.old.as_deref().unwrap_or(""),
                    e.new.as_deref().unwrap_or("")
                )?;
            }
            for e in &r.removed {
                write!(
                    f,
                    "\n  {} - {}: {}",
                    r.table,
                    e.key,
                    e.old.as_deref().unwrap_or("")
                )?;
            }
        }
        Ok(())
    }
}
