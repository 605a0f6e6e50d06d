//! The timing description that drives the cycle-accurate model (documented in
//! `hw/docs/timing.md`).
//!
//! Time inside the model is kept in picoseconds so that the clocked pipeline (cycles) and the
//! serial links (bytes at a line rate) share one exact integer clock; every event the model
//! reports is also given in cycles of the pipeline clock.

/// Per-stage latencies of the pipeline, in cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stages {
    /// MAC receive: frame checks, timestamp, hand-off to the pipeline.
    pub rx_mac: u32,
    /// Parser: Ethernet, VLAN, IPv4/IPv6 with options and extension headers, L4, tunnel.
    pub parse: u32,
    /// Classify: port to VNI (VPORT table) or tunnel VNI (VNI table).
    pub classify: u32,
    /// ACL: TCAM lookup and priority resolution.
    pub acl: u32,
    /// Map: hash of the key (the table-memory read adds `table_mem_latency`).
    pub map_hash: u32,
    /// Mirror filter: TCAM lookup, sampler.
    pub mirror_filter: u32,
    /// Encapsulation or decapsulation.
    pub encap: u32,
    /// Write into the egress queue.
    pub egress: u32,
    /// Mirror branch: clone of the frame into the mirror engine.
    pub clone: u32,
    /// Mirror branch: hash for the shadow map (the read adds `table_mem_latency`).
    pub shadow_map_hash: u32,
    /// Mirror branch: encapsulation of the copy.
    pub mirror_encap: u32,
}

/// The timing of the NIC model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Pipeline clock in kHz (`ID.CLOCK_KHZ`); must divide 10^9 so a cycle is whole ps.
    pub clock_khz: u32,
    /// Width of the pipeline's data bus: a frame of L bytes occupies the pipeline input for
    /// ceil(L / bus_bytes) cycles.
    pub bus_bytes: u32,
    /// Uplink line rate in Gbit/s; must divide 8000 so a byte is whole ps.
    pub uplink_gbps: u32,
    /// Rate of each host-side port (VF, PF) in Gbit/s; must divide 8000.
    pub host_gbps: u32,
    /// Bytes each frame costs on the wire beyond its captured bytes: preamble and start
    /// delimiter (8), FCS (4), inter-frame gap (12).
    pub wire_overhead_bytes: u32,
    /// Shortest frame without FCS (Ethernet pads shorter frames to this).
    pub min_frame_bytes: u32,
    /// Stage latencies.
    pub stages: Stages,
    /// Latency of one table-memory read (a bucket of an exact table), in cycles. The two
    /// candidate buckets are read in parallel.
    pub table_mem_latency: u32,
    /// Receive FIFO per port, in bytes, in front of the pipeline.
    pub rx_fifo_bytes: u32,
    /// Primary (production) egress queue per port, in bytes.
    pub primary_queue_bytes: u32,
    /// Mirror egress queue per port, in bytes.
    pub mirror_queue_bytes: u32,
}

/// Why a timing description cannot drive the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingError {
    /// The clock does not give a whole number of picoseconds per cycle.
    Clock(u32),
    /// A line rate does not give a whole number of picoseconds per byte.
    LineRate(u32),
    /// A size is zero.
    Zero(&'static str),
}

impl core::error::Error for TimingError {}

impl core::fmt::Display for TimingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TimingError::Clock(k) => {
                write!(
                    f,
                    "clock of {k} kHz is not a whole number of picoseconds per cycle"
                )
            }
            TimingError::LineRate(g) => write!(
                f,
                "line rate of {g} Gbit/s is not a whole number of picoseconds per byte (use a divisor of 8000)"
            ),
            TimingError::Zero(what) => write!(f, "{what} must not be zero"),
        }
    }
}

impl Timing {
    /// The timing of the reference design: 250 MHz, 64-byte bus, 100 Gbit/s ports.
    pub const DEFAULT: Timing = Timing {
        clock_khz: 250_000,
        bus_bytes: 64,
        uplink_gbps: 100,
        host_gbps: 100,
        wire_overhead_bytes: 24,
        min_frame_bytes: 60,
        stages: Stages {
            rx_mac: 2,
            parse: 6,
            classify: 2,
            acl: 4,
            map_hash: 2,
            mirror_filter: 4,
            encap: 4,
            egress: 2,
            clone: 2,
            shadow_map_hash: 2,
            mirror_encap: 4,
        },
        table_mem_latency: 24,
        rx_fifo_bytes: 128 * 1024,
        primary_queue_bytes: 256 * 1024,
        mirror_queue_bytes: 64 * 1024,
    };

    /// Checks the description can drive the model.
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.clock_khz == 0 || 1_000_000_000 % self.clock_khz != 0 {
            return Err(TimingError::Clock(self.clock_khz));
        }
        for g in [self.uplink_gbps, self.host_gbps] {
            if g == 0 || 8000 % g != 0 {
                return Err(TimingError::LineRate(g));
            }
        }
        for (v, what) in [
            (self.bus_bytes, "bus width"),
            (self.rx_fifo_bytes, "receive FIFO"),
            (self.primary_queue_bytes, "primary queue"),
            (self.mirror_queue_bytes, "mirror queue"),
        ] {
            if v == 0 {
                return Err(TimingError::Zero(what));
            }
        }
        Ok(())
    }

    /// Picoseconds per pipeline cycle.
    pub const fn cycle_ps(&self) -> u64 {
        1_000_000_000 / self.clock_khz as u64
    }

    /// Picoseconds per byte at a line rate in Gbit/s.
    pub const fn byte_ps(gbps: u32) -> u64 {
        8000 / gbps as u64
    }

    /// Cycles a frame of `len` bytes occupies the pipeline input (at least one).
    pub const fn beats(&self, len: u32) -> u32 {
        let b = len.div_ceil(self.bus_bytes);
        if b == 0 { 1 } else { b }
    }

    /// Bytes a frame of `len` captured bytes occupies on the wire.
    pub const fn wire_bytes(&self, len: u32) -> u32 {
        let padded = if len < self.min_frame_bytes {
            self.min_frame_bytes
        } else {
            len
        };
        padded + self.wire_overhead_bytes
    }

    /// Cycles from pipeline admission to the decision stage (map and mirror filter done):
    /// the part of the path shared by production frames and their copies.
    pub const fn decision_latency(&self) -> u32 {
        let s = &self.stages;
        s.rx_mac
            + s.parse
            + s.classify
            + s.acl
            + s.map_hash
            + self.table_mem_latency
            + s.mirror_filter
    }

    /// Cycles from pipeline admission until a production frame starts entering its egress
    /// queue (the frame is in the queue `beats` cycles later).
    pub const fn primary_latency(&self) -> u32 {
        self.decision_latency() + self.stages.encap + self.stages.egress
    }

    /// Cycles from pipeline admission until a mirror copy starts entering its mirror queue.
    pub const fn mirror_latency(&self) -> u32 {
        let s = &self.stages;
        self.decision_latency()
            + s.clone
            + s.shadow_map_hash
            + self.table_mem_latency
            + s.mirror_encap
            + s.egress
    }

    /// Longest wire time, in cycles, a mirror copy may have. The scheduler decides at cycle t
    /// knowing every frame admitted before t; a frame admitted at t or later is ready no
    /// earlier than t + `primary_latency` + 1 (one beat), so a copy starting at t must end by
    /// then for the decision to be safe. Longer copies are dropped (`MIRROR_OVERSIZE`).
    pub const fn mirror_max_wire_cycles(&self) -> u32 {
        self.primary_latency() + 1
    }

    /// How far ahead, in cycles, an egress scheduler knows every production frame that will
    /// reach its queue: a frame admitted after cycle t reaches a queue no earlier than
    /// t + 1 + `primary_latency` + 1. A mirror copy may start on the wire only if it ends
    /// within this horizon and no production frame is due before it ends — which is how
    /// mirroring never delays production.
    pub const fn egress_lookahead(&self) -> u32 {
        self.primary_latency() + 2
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_pinned() {
        let t = Timing::DEFAULT;
        assert_eq!(t.validate(), Ok(()));
        assert_eq!(t.cycle_ps(), 4000);
        assert_eq!(Timing::byte_ps(100), 80);
        assert_eq!(t.decision_latency(), 44);
        assert_eq!(t.primary_latency(), 50);
        assert_eq!(t.mirror_latency(), 78);
        assert_eq!(t.egress_lookahead(), 52);
        assert_eq!(t.mirror_max_wire_cycles(), 51);
        assert_eq!(t.beats(64), 1);
        assert_eq!(t.beats(65), 2);
        assert_eq!(t.beats(0), 1);
        assert_eq!(t.wire_bytes(60), 84);
        assert_eq!(t.wire_bytes(42), 84);
        assert_eq!(t.wire_bytes(1514), 1538);
    }

    #[test]
    fn rejects_inexact_rates() {
        let mut t = Timing::DEFAULT;
        t.uplink_gbps = 3;
        assert_eq!(t.validate(), Err(TimingError::LineRate(3)));
        let mut t = Timing::DEFAULT;
        t.clock_khz = 322_265;
        assert_eq!(t.validate(), Err(TimingError::Clock(322_265)));
        let mut t = Timing::DEFAULT;
        t.mirror_queue_bytes = 0;
        assert_eq!(t.validate(), Err(TimingError::Zero("mirror queue")));
    }
}
