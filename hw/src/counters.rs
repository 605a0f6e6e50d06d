//! Counter ids: the index of each counter in `COUNTERS.COUNTER[n]`.
//!
//! | ids        | what                                                        |
//! |------------|-------------------------------------------------------------|
//! | 0..528     | ports: port index × 8 + [`PortCounter`]                     |
//! | 544..576   | tables: table id × 4 + [`TableCounter`]                     |
//! | 576..640   | drop reasons: 576 + reason code                             |
//! | 640..1152  | mirror sessions: 640 + session × 8 + [`SessionCounter`]     |
//! | 1152..1160 | pipeline: 1152 + [`PipelineCounter`]                        |
//! | the rest   | reserved (read as 0)                                        |

use crate::{NUM_SESSIONS, Port, drop::DropReason, table::TableId};

/// Number of counters in the window.
pub const NUM_COUNTERS: usize = 2048;

const PORT_BASE: usize = 0;
const PORT_KINDS: usize = 8;
const TABLE_BASE: usize = 544;
const TABLE_KINDS: usize = 4;
const TABLE_SLOTS: usize = 8;
const DROP_BASE: usize = 576;
const SESSION_BASE: usize = 640;
const SESSION_KINDS: usize = 8;
const PIPELINE_BASE: usize = 1152;
const PIPELINE_KINDS: usize = 8;

/// Per-port counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PortCounter {
    /// Frames received.
    RxPackets = 0,
    /// Bytes received.
    RxBytes = 1,
    /// Production frames transmitted (forwarded, delivered, standard path, redirected).
    TxPackets = 2,
    /// Production bytes transmitted.
    TxBytes = 3,
    /// Mirror copies transmitted.
    TxMirrorPackets = 4,
    /// Mirror copy bytes transmitted.
    TxMirrorBytes = 5,
    /// Frames received here and dropped (any reason).
    RxDrops = 6,
    /// Frames and copies dropped at this port's egress queues.
    TxDrops = 7,
}

impl PortCounter {
    /// Every kind.
    pub const ALL: [PortCounter; 8] = [
        PortCounter::RxPackets,
        PortCounter::RxBytes,
        PortCounter::TxPackets,
        PortCounter::TxBytes,
        PortCounter::TxMirrorPackets,
        PortCounter::TxMirrorBytes,
        PortCounter::RxDrops,
        PortCounter::TxDrops,
    ];

    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            PortCounter::RxPackets => "rx_packets",
            PortCounter::RxBytes => "rx_bytes",
            PortCounter::TxPackets => "tx_packets",
            PortCounter::TxBytes => "tx_bytes",
            PortCounter::TxMirrorPackets => "tx_mirror_packets",
            PortCounter::TxMirrorBytes => "tx_mirror_bytes",
            PortCounter::RxDrops => "rx_drops",
            PortCounter::TxDrops => "tx_drops",
        }
    }
}

/// Per-table counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TableCounter {
    /// Lookups that found an entry (rule tables: a rule matched).
    Hits = 0,
    /// Lookups that found none.
    Misses = 1,
    /// Entries written by commands.
    Writes = 2,
    /// Entries deleted by commands.
    Deletes = 3,
}

impl TableCounter {
    /// Every kind.
    pub const ALL: [TableCounter; 4] = [
        TableCounter::Hits,
        TableCounter::Misses,
        TableCounter::Writes,
        TableCounter::Deletes,
    ];

    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            TableCounter::Hits => "hits",
            TableCounter::Misses => "misses",
            TableCounter::Writes => "writes",
            TableCounter::Deletes => "deletes",
        }
    }
}

/// Per-session counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum SessionCounter {
    /// Copies made (filter matched and the sample selected the packet).
    Copies = 0,
    /// Bytes of the copies as encapsulated.
    CopyBytes = 1,
    /// Copies transmitted.
    TxPackets = 2,
    /// Bytes of copies transmitted.
    TxBytes = 3,
    /// Copies dropped by the policer.
    Policed = 4,
    /// Copies dropped for any reason but the policer (queue full, oversize, MTU, no substrate
    /// address, session disabled).
    Dropped = 5,
    /// Matching packets the sampler skipped.
    SampledOut = 6,
    /// Packets redirected to the shadow (redirect mode).
    Redirected = 7,
}

impl SessionCounter {
    /// Every kind.
    pub const ALL: [SessionCounter; 8] = [
        SessionCounter::Copies,
        SessionCounter::CopyBytes,
        SessionCounter::TxPackets,
        SessionCounter::TxBytes,
        SessionCounter::Policed,
        SessionCounter::Dropped,
        SessionCounter::SampledOut,
        SessionCounter::Redirected,
    ];

    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            SessionCounter::Copies => "copies",
            SessionCounter::CopyBytes => "copy_bytes",
            SessionCounter::TxPackets => "tx_packets",
            SessionCounter::TxBytes => "tx_bytes",
            SessionCounter::Policed => "policed",
            SessionCounter::Dropped => "dropped",
            SessionCounter::SampledOut => "sampled_out",
            SessionCounter::Redirected => "redirected",
        }
    }
}

/// Pipeline-wide counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PipelineCounter {
    /// Frames admitted into the pipeline.
    Admitted = 0,
    /// Cycles the pipeline input was busy.
    BusyCycles = 1,
    /// Sum over admitted frames of cycles waited in the receive FIFO.
    RxWaitCycles = 2,
    /// Largest receive-FIFO occupancy seen, in bytes.
    RxFifoHighWater = 3,
    /// Releases accepted: redirected frames the shadow sent back, delivered to production.
    Released = 4,
    /// Bytes of the released inner frames.
    ReleasedBytes = 5,
}

impl PipelineCounter {
    /// Every kind.
    pub const ALL: [PipelineCounter; 6] = [
        PipelineCounter::Admitted,
        PipelineCounter::BusyCycles,
        PipelineCounter::RxWaitCycles,
        PipelineCounter::RxFifoHighWater,
        PipelineCounter::Released,
        PipelineCounter::ReleasedBytes,
    ];

    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            PipelineCounter::Admitted => "admitted",
            PipelineCounter::BusyCycles => "busy_cycles",
            PipelineCounter::RxWaitCycles => "rx_wait_cycles",
            PipelineCounter::RxFifoHighWater => "rx_fifo_high_water",
            PipelineCounter::Released => "released",
            PipelineCounter::ReleasedBytes => "released_bytes",
        }
    }
}

/// A counter's index in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterId(pub u16);

impl CounterId {
    /// Index into the window.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Counter of a port.
pub const fn port(port: Port, kind: PortCounter) -> CounterId {
    CounterId((PORT_BASE + port.index() * PORT_KINDS + kind as usize) as u16)
}

/// Counter of a table.
pub const fn table(table: TableId, kind: TableCounter) -> CounterId {
    CounterId((TABLE_BASE + table as usize * TABLE_KINDS + kind as usize) as u16)
}

/// Counter of a drop reason.
pub const fn drop_reason(reason: DropReason) -> CounterId {
    CounterId((DROP_BASE + reason as usize) as u16)
}

/// Counter of a mirror session.
pub const fn session(session: u16, kind: SessionCounter) -> CounterId {
    CounterId((SESSION_BASE + session as usize * SESSION_KINDS + kind as usize) as u16)
}

/// Pipeline-wide counter.
pub const fn pipeline(kind: PipelineCounter) -> CounterId {
    CounterId((PIPELINE_BASE + kind as usize) as u16)
}

/// What a counter id stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterName {
    /// A port counter.
    Port(Port, PortCounter),
    /// A table counter.
    Table(TableId, TableCounter),
    /// A drop-reason counter.
    Drop(DropReason),
    /// A session counter.
    Session(u16, SessionCounter),
    /// A pipeline counter.
    Pipeline(PipelineCounter),
}

/// Names a counter id; `None` for reserved ids.
pub fn describe(id: CounterId) -> Option<CounterName> {
    let i = id.index();
    if i < PORT_BASE + Port::COUNT * PORT_KINDS {
        let port = Port::from_index(i / PORT_KINDS)?;
        return Some(CounterName::Port(port, PortCounter::ALL[i % PORT_KINDS]));
    }
    if (TABLE_BASE..TABLE_BASE + TABLE_SLOTS * TABLE_KINDS).contains(&i) {
        let j = i - TABLE_BASE;
        let t = TableId::from_u8((j / TABLE_KINDS) as u8)?;
        return Some(CounterName::Table(t, TableCounter::ALL[j % TABLE_KINDS]));
    }
    if (DROP_BASE..DROP_BASE + DropReason::CODES).contains(&i) {
        return DropReason::from_code((i - DROP_BASE) as u8).map(CounterName::Drop);
    }
    if (SESSION_BASE..SESSION_BASE + NUM_SESSIONS * SESSION_KINDS).contains(&i) {
        let j = i - SESSION_BASE;
        return Some(CounterName::Session(
            (j / SESSION_KINDS) as u16,
            SessionCounter::ALL[j % SESSION_KINDS],
        ));
    }
    if (PIPELINE_BASE..PIPELINE_BASE + PIPELINE_KINDS).contains(&i) {
        return PipelineCounter::ALL
            .get(i - PIPELINE_BASE)
            .copied()
            .map(CounterName::Pipeline);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_ids() {
        assert_eq!(port(Port::Vport(0), PortCounter::RxPackets), CounterId(0));
        assert_eq!(port(Port::Uplink, PortCounter::TxDrops), CounterId(527));
        assert_eq!(table(TableId::Map, TableCounter::Hits), CounterId(556));
        assert_eq!(drop_reason(DropReason::AclDeny), CounterId(585));
        assert_eq!(session(63, SessionCounter::Redirected), CounterId(1151));
        assert_eq!(pipeline(PipelineCounter::Admitted), CounterId(1152));
    }

    #[test]
    fn every_named_id_is_unique_and_described() {
        let mut seen = [false; NUM_COUNTERS];
        let mut mark = |id: CounterId, name: CounterName| {
            assert!(id.index() < NUM_COUNTERS);
            assert!(!seen[id.index()], "{id:?} used twice");
            seen[id.index()] = true;
            assert_eq!(describe(id), Some(name));
        };
        for i in 0..Port::COUNT {
            let p = Port::from_index(i).expect("port");
            for k in PortCounter::ALL {
                mark(port(p, k), CounterName::Port(p, k));
            }
        }
        for t in TableId::ALL {
            for k in TableCounter::ALL {
                mark(table(t, k), CounterName::Table(t, k));
            }
        }
        for r in DropReason::ALL {
            mark(drop_reason(r), CounterName::Drop(r));
        }
        for s in 0..NUM_SESSIONS as u16 {
            for k in SessionCounter::ALL {
                mark(session(s, k), CounterName::Session(s, k));
            }
        }
        for k in PipelineCounter::ALL {
            mark(pipeline(k), CounterName::Pipeline(k));
        }
        assert_eq!(describe(CounterId(2000)), None);
    }
}
