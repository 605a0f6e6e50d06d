//! Reading the NIC's counters through the driver (`Nic::snapshot_counters`).

use shadownet_host::driver::CounterSnapshot;
use shadownet_hw::{
    NUM_SESSIONS, Port,
    counters::{self, PortCounter, SessionCounter, TableCounter},
    drop::DropReason,
    table::TableId,
};

use crate::lab::Lab;

/// One snapshot of every counter, with typed accessors.
#[derive(Clone, Debug)]
pub struct Counts(pub CounterSnapshot);

impl Counts {
    /// Frames dropped for `reason`.
    pub fn drop(&self, reason: DropReason) -> u64 {
        self.0.get(counters::drop_reason(reason))
    }

    /// A port counter.
    pub fn port(&self, port: Port, kind: PortCounter) -> u64 {
        self.0.get(counters::port(port, kind))
    }

    /// A session counter.
    pub fn session(&self, session: u16, kind: SessionCounter) -> u64 {
        self.0.get(counters::session(session, kind))
    }

    /// A pipeline counter.
    pub fn pipeline(&self, kind: counters::PipelineCounter) -> u64 {
        self.0.get(counters::pipeline(kind))
    }

    /// A table counter.
    pub fn table(&self, table: TableId, kind: TableCounter) -> u64 {
        self.0.get(counters::table(table, kind))
    }

    /// A port counter summed over every port.
    pub fn all_ports(&self, kind: PortCounter) -> u64 {
        (0..Port::COUNT)
            .filter_map(Port::from_index)
            .map(|p| self.port(p, kind))
            .sum()
    }

    /// A session counter summed over every session.
    pub fn all_sessions(&self, kind: SessionCounter) -> u64 {
        (0..NUM_SESSIONS as u16)
            .map(|s| self.session(s, kind))
            .sum()
    }

    /// Every drop reason with a non-zero count.
    pub fn drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.drop(r)))
            .filter(|&(_, n)| n != 0)
            .collect()
    }

    /// Drops of production frames (reasons other than the `MIRROR_*` ones).
    pub fn production_drops(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| !r.is_mirror())
            .map(|&r| self.drop(r))
            .sum()
    }

    /// Drops of mirror copies (the `MIRROR_*` reasons).
    pub fn copy_drops(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| r.is_mirror())
            .map(|&r| self.drop(r))
            .sum()
    }
}

impl Lab {
    /// Latches and reads every counter.
    pub fn counts(&mut self) -> Counts {
        Counts(self.nic.snapshot_counters().expect("counter snapshot"))
    }
}
