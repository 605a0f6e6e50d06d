//! The model's counters: one u64 per counter id, latched into the BAR on `SNAPSHOT`.

use shadownet_hw::{
    Port,
    counters::{
        self, CounterId, NUM_COUNTERS, PipelineCounter, PortCounter, SessionCounter, TableCounter,
    },
    drop::DropReason,
    table::TableId,
};

/// Every counter of the device.
#[derive(Clone)]
pub struct Counters {
    values: Box<[u64; NUM_COUNTERS]>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            values: Box::new([0; NUM_COUNTERS]),
        }
    }
}

impl Counters {
    /// Value of a counter.
    #[inline]
    pub fn get(&self, id: CounterId) -> u64 {
        self.values[id.index()]
    }

    /// Adds to a counter.
    #[inline]
    pub fn add(&mut self, id: CounterId, n: u64) {
        self.values[id.index()] += n;
    }

    /// Raises a counter to at least `v` (high-water marks).
    #[inline]
    pub fn max(&mut self, id: CounterId, v: u64) {
        let c = &mut self.values[id.index()];
        *c = (*c).max(v);
    }

    /// Counts a port event of `bytes`.
    #[inline]
    pub fn port(&mut self, port: Port, packets: PortCounter, bytes: PortCounter, len: usize) {
        self.port_index(port.index(), packets, bytes, len);
    }

    /// [`Counters::port`] for the port of [`Port::index`] `index` (below [`Port::COUNT`]).
    #[inline(always)]
    pub fn port_index(
        &mut self,
        index: usize,
        packets: PortCounter,
        bytes: PortCounter,
        len: usize,
    ) {
        // A port's counters are a fixed stride apart.
        const STRIDE: usize = counters::port(Port::Vport(1), PortCounter::TxPackets).index()
            - counters::port(Port::Vport(0), PortCounter::TxPackets).index();
        let at = index * STRIDE;
        self.values[counters::port(Port::Vport(0), packets).index() + at] += 1;
        self.values[counters::port(Port::Vport(0), bytes).index() + at] += len as u64;
    }

    /// Counts a table lookup.
    #[inline]
    pub fn lookup(&mut self, table: TableId, hit: bool) {
        let kind = if hit {
            TableCounter::Hits
        } else {
            TableCounter::Misses
        };
        self.add(counters::table(table, kind), 1);
    }

    /// Counts a drop.
    #[inline]
    pub fn dropped(&mut self, reason: DropReason) {
        self.add(counters::drop_reason(reason), 1);
    }

    /// Counts a session event.
    #[inline]
    pub fn session(&mut self, session: u16, kind: SessionCounter, n: u64) {
        self.add(counters::session(session, kind), n);
    }

    /// Counts a session event of `len` bytes: `packets` by one and `bytes` by `len`, the
    /// session's counters addressed once (one bounds check for both).
    #[inline(always)]
    pub fn session_len(
        &mut self,
        session: u16,
        packets: SessionCounter,
        bytes: SessionCounter,
        len: usize,
    ) {
        const KINDS: usize = SessionCounter::ALL.len();
        let first = counters::session(session, SessionCounter::ALL[0]).index();
        let kinds = &mut self.values[first..first + KINDS];
        kinds[packets as usize] += 1;
        kinds[bytes as usize] += len as u64;
    }

    /// Counts a pipeline event.
    #[inline]
    pub fn pipeline(&mut self, kind: PipelineCounter, n: u64) {
        self.add(counters::pipeline(kind), n);
    }

    /// Every value, by id.
    pub fn values(&self) -> &[u64; NUM_COUNTERS] {
        &self.values
    }

    /// Zeroes every counter.
    pub fn clear(&mut self) {
        self.values.fill(0);
    }
}
