//! Programming a diff: commands grouped into per-table batches, in an order that never lets a
//! packet see a reference to something missing or a table less restrictive than both the old
//! and the new state demand.

use std::time::{Duration, Instant};

use serde::Serialize;
use shadownet_hw::{
    layout::{
        acl::{AclRule, Verdict},
        map::{MapKey, MapValue},
        mirror_filter::{MirrorFilter, MirrorVerdict},
        session::MirrorSession,
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::VniEntry,
        vport::VportEntry,
    },
    table::TableId,
};

use super::{
    ReconcileError, Table,
    diff::{Counts, EntryDiff, TableDiff},
};
use crate::driver::{Device, DriverError, Nic};

/// One device command of a reconciliation. A write replaces an entry in one command (the
/// device swaps it between two packets); nothing is ever deleted to be written again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Add or replace a virtual network.
    WriteVni(u32, VniEntry),
    /// Remove a virtual network.
    DeleteVni(u32),
    /// Bind (or rebind) a VF.
    WriteVport(u16, VportEntry),
    /// Unbind a VF.
    DeleteVport(u16),
    /// Add or replace a map entry.
    WriteMap(MapKey, MapValue),
    /// Remove a map entry.
    DeleteMap(MapKey),
    /// Add or replace a production-to-shadow map entry.
    WriteShadowMap(ShadowMapKey, ShadowMapValue),
    /// Remove a production-to-shadow map entry.
    DeleteShadowMap(ShadowMapKey),
    /// Configure (or reconfigure) a mirror session, committed at once.
    ConfigureSession(u16, MirrorSession),
    /// Disable a mirror session.
    DisableSession(u16),
    /// Write an ACL slot.
    WriteAcl(u32, AclRule),
    /// Empty an ACL slot.
    DeleteAcl(u32),
    /// Write a mirror filter slot.
    WriteMirrorFilter(u32, MirrorFilter),
    /// Empty a mirror filter slot.
    DeleteMirrorFilter(u32),
}

impl Command {
    /// The table (or the sessions) the command changes.
    pub fn table(&self) -> Table {
        match self {
            Command::WriteVni(..) | Command::DeleteVni(_) => Table::Vni,
            Command::WriteVport(..) | Command::DeleteVport(_) => Table::Vport,
            Command::WriteMap(..) | Command::DeleteMap(_) => Table::Map,
            Command::WriteShadowMap(..) | Command::DeleteShadowMap(_) => Table::ShadowMap,
            Command::ConfigureSession(..) | Command::DisableSession(_) => Table::Session,
            Command::WriteAcl(..) | Command::DeleteAcl(_) => Table::Acl,
            Command::WriteMirrorFilter(..) | Command::DeleteMirrorFilter(_) => Table::MirrorFilter,
        }
    }

    /// Issues the command; `Ok(false)` when a delete found nothing to delete.
    pub fn execute<D: Device>(&self, nic: &mut Nic<D>) -> Result<bool, DriverError> {
        match self {
            Command::WriteVni(v, e) => nic.write_vni(*v, e).map(|_| true),
            Command::DeleteVni(v) => nic.delete_vni(*v),
            Command::WriteVport(p, e) => nic.write_vport(*p, e).map(|_| true),
            Command::DeleteVport(p) => nic.delete_slot(TableId::Vport, u32::from(*p)),
            Command::WriteMap(k, v) => nic.write_map(k, v).map(|_| true),
            Command::DeleteMap(k) => nic.delete_map(k),
            Command::WriteShadowMap(k, v) => nic.write_shadow_map(k, v).map(|_| true),
            Command::DeleteShadowMap(k) => nic.delete_shadow_map(k),
            Command::ConfigureSession(s, cfg) => nic.configure_session(*s, cfg).map(|_| true),
            Command::DisableSession(s) => nic.disable_session(*s).map(|_| true),
            Command::WriteAcl(slot, r) => nic.write_acl(*slot, r).map(|_| true),
            Command::DeleteAcl(slot) => nic.delete_slot(TableId::Acl, *slot),
            Command::WriteMirrorFilter(slot, f) => nic.write_mirror_filter(*slot, f).map(|_| true),
            Command::DeleteMirrorFilter(slot) => nic.delete_slot(TableId::MirrorFilter, *slot),
        }
    }
}

/// Commands for one table, issued together. Today each command is its own doorbell; the
/// command ring will take a batch as one submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The table every command changes.
    pub table: Table,
    /// Why this batch comes where it does (for logs).
    pub stage: &'static str,
    /// The commands, in order.
    pub commands: Vec<Command>,
}

impl Batch {
    /// Issues every command in order, calling `after` once each has completed. Returns how
    /// many deletes found nothing to delete.
    pub fn submit<D: Device>(
        &self,
        nic: &mut Nic<D>,
        after: &mut dyn FnMut(&mut Nic<D>, &Command),
    ) -> Result<usize, DriverError> {
        let mut absent = 0;
        for c in &self.commands {
            if !c.execute(nic)? {
                absent += 1;
            }
            after(nic, c);
        }
        Ok(absent)
    }
}

fn writes<K: Copy, V: Copy>(
    d: &EntryDiff<K, V>,
    keep: impl Fn(&V) -> bool,
    cmd: impl Fn(K, V) -> Command,
) -> Vec<Command> {
    d.add
        .iter()
        .map(|(k, v)| (*k, *v))
        .chain(d.change.iter().map(|c| (c.key, c.new)))
        .filter(|(_, v)| keep(v))
        .map(|(k, v)| cmd(k, v))
        .collect()
}

fn deletes<K: Copy, V>(
    d: &EntryDiff<K, V>,
    keep: impl Fn(&V) -> bool,
    cmd: impl Fn(K) -> Command,
) -> Vec<Command> {
    d.remove
        .iter()
        .filter(|(_, v)| keep(v))
        .map(|(k, _)| cmd(*k))
        .collect()
}

fn all<V>(_: &V) -> bool {
    true
}

fn deny(r: &AclRule) -> bool {
    r.action.verdict == Verdict::Deny
}

fn skip(f: &MirrorFilter) -> bool {
    f.action.verdict == MirrorVerdict::DoNotMirror
}

/// The batches that program `diff`, in order.
///
/// Everything that narrows what traffic may do comes before what widens it, and an entry
/// comes after everything it refers to and goes before it:
///
/// 1. additions and in-place changes, bottom-up: VNIs; ACL deny rules and mirror skip rules
///    (restrictions first, so a VF that is bound next already meets its network's denials);
///    mirror sessions and the shadow map (inert until a filter sends copies); VF bindings;
///    the map (which may point at a local VF); ACL allow rules; mirror filters that copy
///    (which refer to a VF and a session);
/// 2. removals, top-down, the reverse: copying filters; allow rules; the map; VF bindings;
///    the shadow map; sessions; skip and deny rules; VNIs.
///
/// A change is placed by its new entry (a rule that becomes a deny is a restriction). A
/// change is always one write: the device replaces the entry between two packets.
pub fn plan_batches(diff: &TableDiff) -> Vec<Batch> {
    let batches = vec![
        Batch {
            table: Table::Vni,
            stage: "add virtual networks",
            commands: writes(&diff.vnis, all, Command::WriteVni),
        },
        Batch {
            table: Table::Acl,
            stage: "add deny rules",
            commands: writes(&diff.acl, deny, Command::WriteAcl),
        },
        Batch {
            table: Table::MirrorFilter,
            stage: "add mirror skip rules",
            commands: writes(&diff.mirror_filters, skip, Command::WriteMirrorFilter),
        },
        Batch {
            table: Table::Session,
            stage: "configure mirror sessions",
            commands: writes(&diff.sessions, all, Command::ConfigureSession),
        },
        Batch {
            table: Table::ShadowMap,
            stage: "add shadow map entries",
            commands: writes(&diff.shadow_map, all, Command::WriteShadowMap),
        },
        Batch {
            table: Table::Vport,
            stage: "bind VFs",
            commands: writes(&diff.vports, all, Command::WriteVport),
        },
        Batch {
            table: Table::Map,
            stage: "add map entries",
            commands: writes(&diff.map, all, Command::WriteMap),
        },
        Batch {
            table: Table::Acl,
            stage: "add allow rules",
            commands: writes(&diff.acl, |r| !deny(r), Command::WriteAcl),
        },
        Batch {
            table: Table::MirrorFilter,
            stage: "add mirror filters",
            commands: writes(
                &diff.mirror_filters,
                |f| !skip(f),
                Command::WriteMirrorFilter,
            ),
        },
        Batch {
            table: Table::MirrorFilter,
            stage: "remove mirror filters",
            commands: deletes(
                &diff.mirror_filters,
                |f| !skip(f),
                Command::DeleteMirrorFilter,
            ),
        },
        Batch {
            table: Table::Acl,
            stage: "remove allow rules",
            commands: deletes(&diff.acl, |r| !deny(r), Command::DeleteAcl),
        },
        Batch {
            table: Table::Map,
            stage: "remove map entries",
            commands: deletes(&diff.map, all, Command::DeleteMap),
        },
        Batch {
            table: Table::Vport,
            stage: "unbind VFs",
            commands: deletes(&diff.vports, all, Command::DeleteVport),
        },
        Batch {
            table: Table::ShadowMap,
            stage: "remove shadow map entries",
            commands: deletes(&diff.shadow_map, all, Command::DeleteShadowMap),
        },
        Batch {
            table: Table::Session,
            stage: "disable mirror sessions",
            commands: deletes(&diff.sessions, all, Command::DisableSession),
        },
        Batch {
            table: Table::MirrorFilter,
            stage: "remove mirror skip rules",
            commands: deletes(&diff.mirror_filters, skip, Command::DeleteMirrorFilter),
        },
        Batch {
            table: Table::Acl,
            stage: "remove deny rules",
            commands: deletes(&diff.acl, deny, Command::DeleteAcl),
        },
        Batch {
            table: Table::Vni,
            stage: "remove virtual networks",
            commands: deletes(&diff.vnis, all, Command::DeleteVni),
        },
    ];
    batches
        .into_iter()
        .filter(|b| !b.commands.is_empty())
        .collect()
}

/// What an [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Entries added, changed and removed per table.
    pub counts: Vec<(Table, Counts)>,
    /// Device commands issued.
    pub commands: usize,
    /// Batches submitted.
    pub batches: usize,
    /// Deletes that found the entry already gone (someone else removed it meanwhile).
    pub already_absent: usize,
    /// Wall-clock time, microseconds.
    pub micros: u64,
}

impl ApplyReport {
    /// Entries programmed per second.
    pub fn entries_per_second(&self) -> f64 {
        let secs = self.micros as f64 / 1e6;
        if secs > 0.0 {
            self.commands as f64 / secs
        } else {
            0.0
        }
    }
}

/// Programs `diff` into the NIC in the order of [`plan_batches`].
pub fn apply<D: Device>(nic: &mut Nic<D>, diff: &TableDiff) -> Result<ApplyReport, ReconcileError> {
    apply_observed(nic, diff, &mut |_, _| {})
}

/// [`apply`], calling `after` once each command has completed: tests send packets there to
/// see every intermediate state a packet can meet.
pub fn apply_observed<D: Device>(
    nic: &mut Nic<D>,
    diff: &TableDiff,
    after: &mut dyn FnMut(&mut Nic<D>, &Command),
) -> Result<ApplyReport, ReconcileError> {
    let started = Instant::now();
    let batches = plan_batches(diff);
    let mut report = ApplyReport {
        counts: diff.counts(),
        batches: batches.len(),
        ..ApplyReport::default()
    };
    for b in &batches {
        tracing::debug!(table = %b.table, stage = b.stage, commands = b.commands.len(), "batch");
        report.already_absent += b.submit(nic, after)?;
        report.commands += b.commands.len();
    }
    report.micros = duration_micros(started.elapsed());
    tracing::info!(
        commands = report.commands,
        batches = report.batches,
        micros = report.micros,
        "applied table diff"
    );
    Ok(report)
}

pub(super) fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
