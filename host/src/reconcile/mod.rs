//! The reconciler: desired table state → diff against what the NIC holds → batched
//! programming through the driver → read back to prove it.
//!
//! - [`read_back`] reads every table and mirror session through the driver and decodes the
//!   entries into layout types ([`TableState`]).
//! - [`diff()`] compares desired and actual state: exact tables by key, rule tables by slot,
//!   sessions by number, VF bindings by port ([`TableDiff`], readable with `Display` and as
//!   JSON).
//! - [`apply`] programs a diff in per-table [`Batch`]es, ordered so that no packet meets a
//!   dangling reference or a looser policy than both the old and the new state allow, and
//!   each changed entry is one write the device swaps between two packets.
//! - [`Reconciler`] does it all, notices NIC resets (the `CTRL.RESET_COUNT` the driver
//!   reports) and rebuilds after them, re-applies the port configuration when needed, and
//!   verifies by reading back that nothing is left to do.

mod apply;
mod describe;
mod diff;
mod state;

use std::{fmt, time::Instant};

use serde::Serialize;
use shadownet_hw::{layout::LayoutError, table::TableId};

pub use apply::{ApplyReport, Batch, Command, apply, apply_observed, plan_batches};
pub use describe::Describe;
pub use diff::{Change, Counts, EntryDiff, EntryLine, TableDiff, TableReport, diff};
pub use state::{Actual, TableState, read_back, read_back_expecting};

use crate::{
    driver::{Device, DriverError, Nic, PortConfig},
    netdesc::Plan,
};

/// A table of the NIC, or its mirror sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Virtual networks.
    Vni,
    /// VF bindings.
    Vport,
    /// Overlay to substrate map.
    Map,
    /// Production to shadow map.
    ShadowMap,
    /// Mirror sessions.
    Session,
    /// ACL rules.
    Acl,
    /// Mirror filters.
    MirrorFilter,
}

impl Table {
    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Table::Vni => "vni",
            Table::Vport => "vport",
            Table::Map => "map",
            Table::ShadowMap => "shadow_map",
            Table::Session => "session",
            Table::Acl => "acl",
            Table::MirrorFilter => "mirror_filter",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The device holds an entry that does not decode.
    #[error("table {table} slot {slot} holds an entry that does not decode: {source}")]
    Undecodable {
        /// The table.
        table: TableId,
        /// The slot.
        slot: u32,
        /// The layout rule it breaks.
        source: LayoutError,
    },
    /// The desired state gives one key two different entries.
    #[error("desired state gives {table} {key} two entries: {first}; and {second}")]
    Conflict {
        /// The table.
        table: Table,
        /// The key.
        key: String,
        /// The first entry.
        first: String,
        /// The other entry.
        second: String,
    },
    /// After programming, the read-back still differs from the desired state.
    #[error("the NIC still differs from the desired state after programming: {0}")]
    Drift(Box<TableDiff>),
    /// The NIC was reset while being programmed.
    #[error("the NIC was reset while it was being reconciled (reset count {before} → {after})")]
    ResetDuringReconcile {
        /// Reset count when reconciliation started.
        before: u32,
        /// Reset count at the end.
        after: u32,
    },
}

/// What a [`Reconciler::reconcile`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// The NIC was reset since the last reconciliation (everything was rebuilt).
    pub reset_detected: bool,
    /// Tables changed since the last reconciliation by someone else (the device's table
    /// generation moved without a reset).
    pub foreign_table_changes: bool,
    /// The port configuration was (re)applied.
    pub port_configured: bool,
    /// Forwarding was (re)enabled.
    pub enabled: bool,
    /// How far the NIC was from the desired state.
    pub drift: Counts,
    /// The programming.
    pub applied: ApplyReport,
    /// Reading the NIC back before programming, microseconds.
    pub read_back_micros: u64,
    /// Reading it back after programming to verify, microseconds.
    pub verify_micros: u64,
    /// The whole reconciliation, microseconds.
    pub micros: u64,
}

impl ReconcileReport {
    /// Device commands issued (table and session commands, port configuration, enable).
    pub fn operations(&self) -> usize {
        self.applied.commands + usize::from(self.port_configured) + usize::from(self.enabled)
    }
}

/// What the reconciler remembers of the NIC between runs. A fresh reconciler (daemon start)
/// remembers nothing and so re-applies the port configuration and forwarding once.
#[derive(Clone, Debug)]
struct Seen {
    reset_count: u32,
    generation: u32,
    port: PortConfig,
    state: TableState,
}

/// Keeps one NIC at a desired state.
#[derive(Clone, Debug, Default)]
pub struct Reconciler {
    trace: bool,
    seen: Option<Seen>,
}

impl Reconciler {
    /// A reconciler that knows nothing of the NIC yet.
    pub fn new() -> Reconciler {
        Reconciler::default()
    }

    /// With the device's per-packet trace on when it enables forwarding.
    pub fn with_trace(trace: bool) -> Reconciler {
        Reconciler { trace, seen: None }
    }

    /// Whether the NIC was reset since this reconciler last programmed it.
    pub fn reset_since_last<D: Device>(&self, nic: &Nic<D>) -> bool {
        self.seen
            .as_ref()
            .is_some_and(|s| s.reset_count != nic.identify().reset_count)
    }

    /// What the NIC needs changed to hold `desired`, without changing anything.
    pub fn drift<D: Device>(
        &mut self,
        nic: &mut Nic<D>,
        desired: &Plan,
    ) -> Result<TableDiff, ReconcileError> {
        let want = TableState::from_plan(desired)?;
        let also = self.seen.as_ref().map(|s| &s.state);
        let actual = read_back_expecting(nic, &want, also)?;
        Ok(diff(&want, &actual))
    }

    /// Brings the NIC to `desired`: reads it back, programs the difference, reads it back
    /// again and fails with [`ReconcileError::Drift`] naming every entry that still differs.
    /// After a NIC reset (or on a reconciler's first run) the port configuration is applied
    /// and forwarding enabled; otherwise the port configuration is applied only when it
    /// changed, since its registers cannot be read back reliably.
    pub fn reconcile<D: Device>(
        &mut self,
        nic: &mut Nic<D>,
        desired: &Plan,
    ) -> Result<ReconcileReport, ReconcileError> {
        let started = Instant::now();
        let want = TableState::from_plan(desired)?;
        let id = nic.identify();
        let generation = nic.generation();
        let mut report = ReconcileReport::default();
        let (rebuild, port_changed) = match &self.seen {
            None => (true, true),
            Some(s) => {
                report.reset_detected = s.reset_count != id.reset_count;
                report.foreign_table_changes = !report.reset_detected && s.generation != generation;
                (report.reset_detected, s.port != desired.port)
            }
        };
        if report.reset_detected {
            tracing::warn!(
                reset_count = id.reset_count,
                "the NIC was reset since the last reconciliation: rebuilding"
            );
        }
        if report.foreign_table_changes {
            tracing::warn!("the NIC's tables were changed by someone else");
        }
        if rebuild || port_changed {
            nic.configure_port(&desired.port)?;
            report.port_configured = true;
        }

        let t = Instant::now();
        let also = self.seen.as_ref().map(|s| &s.state);
        let actual = read_back_expecting(nic, &want, also)?;
        report.read_back_micros = apply::duration_micros(t.elapsed());
        let todo = diff(&want, &actual);
        report.drift = todo.total();
        if !todo.is_empty() {
            tracing::info!(drift = %todo.total().total(), "reconciling");
            tracing::debug!(diff = %todo, "drift");
            report.applied = apply(nic, &todo)?;
        }
        if rebuild {
            nic.set_enabled(true, self.trace)?;
            report.enabled = true;
        }

        let t = Instant::now();
        let after = read_back_expecting(nic, &want, Some(&actual))?;
        report.verify_micros = apply::duration_micros(t.elapsed());
        let end = nic.identify().reset_count;
        if end != id.reset_count {
            self.seen = None;
            return Err(ReconcileError::ResetDuringReconcile {
                before: id.reset_count,
                after: end,
            });
        }
        let left = diff(&want, &after);
        if !left.is_empty() {
            // Something else is writing the tables: the next run must not trust them.
            self.seen = None;
            return Err(ReconcileError::Drift(Box::new(left)));
        }
        self.seen = Some(Seen {
            reset_count: end,
            generation: nic.generation(),
            port: desired.port,
            state: want,
        });
        report.micros = apply::duration_micros(started.elapsed());
        Ok(report)
    }
}
