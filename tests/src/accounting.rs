//! Counter deltas and the accounting identities every run must satisfy (DESIGN.md, "Every
//! frame is accounted for"): each frame received leaves exactly once or is dropped with one
//! reason; each copy a filter asks for leaves or is dropped with a `mirror_*` reason.

use shadownet_host::driver::CounterSnapshot;
use shadownet_hw::counters::{PortCounter, SessionCounter};

use crate::counts::Counts;

/// `after - before`, counter by counter. Panics if a counter went backwards (counters only
/// grow between snapshots unless cleared).
pub fn delta(before: &Counts, after: &Counts) -> Counts {
    assert_eq!(
        before.0.values.len(),
        after.0.values.len(),
        "snapshots of different sizes"
    );
    let values = before
        .0
        .values
        .iter()
        .zip(&after.0.values)
        .enumerate()
        .map(|(i, (&b, &a))| {
            assert!(a >= b, "counter {i} went backwards: {b} -> {a}");
            a - b
        })
        .collect();
    Counts(CounterSnapshot {
        cycle: after.0.cycle,
        values,
    })
}

/// The totals the accounting identities are made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Σ port rx_packets.
    pub received: u64,
    /// Σ port tx_packets (production).
    pub transmitted: u64,
    /// Σ production drop reasons.
    pub dropped: u64,
    /// Σ port rx_drops.
    pub rx_drops: u64,
    /// Σ session copies.
    pub copies: u64,
    /// Σ port tx_mirror_packets.
    pub copies_sent: u64,
    /// Σ session tx_packets.
    pub session_sent: u64,
    /// Σ mirror drop reasons.
    pub copies_dropped: u64,
    /// Σ session policed + dropped.
    pub session_dropped: u64,
}

impl Balance {
    /// The totals of a snapshot (or of a delta).
    pub fn of(c: &Counts) -> Balance {
        Balance {
            received: c.all_ports(PortCounter::RxPackets),
            transmitted: c.all_ports(PortCounter::TxPackets),
            dropped: c.production_drops(),
            rx_drops: c.all_ports(PortCounter::RxDrops),
            copies: c.all_sessions(SessionCounter::Copies),
            copies_sent: c.all_ports(PortCounter::TxMirrorPackets),
            session_sent: c.all_sessions(SessionCounter::TxPackets),
            copies_dropped: c.copy_drops(),
            session_dropped: c.all_sessions(SessionCounter::Policed)
                + c.all_sessions(SessionCounter::Dropped),
        }
    }

    /// Every identity that does not hold, in words (empty: balanced).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.received != self.transmitted + self.dropped {
            out.push(format!(
                "received {} != transmitted {} + dropped {}",
                self.received, self.transmitted, self.dropped
            ));
        }
        if self.rx_drops != self.dropped {
            out.push(format!(
                "port rx_drops {} != production drops by reason {}",
                self.rx_drops, self.dropped
            ));
        }
        if self.copies != self.copies_sent + self.copies_dropped {
            out.push(format!(
                "copies {} != copies sent {} + copies dropped {}",
                self.copies, self.copies_sent, self.copies_dropped
            ));
        }
        if self.session_sent != self.copies_sent {
            out.push(format!(
                "session tx_packets {} != port tx_mirror_packets {}",
                self.session_sent, self.copies_sent
            ));
        }
        if self.session_dropped != self.copies_dropped {
            out.push(format!(
                "session policed + dropped {} != mirror drops by reason {}",
                self.session_dropped, self.copies_dropped
            ));
        }
        out
    }
}
