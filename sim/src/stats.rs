//! Run statistics: latency distributions in cycles and the span of simulated time.

use shadownet_hw::Port;

use crate::datapath::{OutFrame, Queue};

/// What happened to frames, by where they came from and where they went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(usize)]
pub enum Class {
    /// From a VM, encapsulated toward another host.
    ForwardedToSubstrate,
    /// From a VM, delivered to another VM behind this NIC.
    DeliveredVmToVm,
    /// From a VM, down the standard path to the host (non-IP, map miss).
    VmToHost,
    /// From the uplink, decapsulated and delivered to a VM.
    DeliveredFromSubstrate,
    /// From the uplink, not a tunnel to this NIC: standard path to the host.
    UplinkToHost,
    /// From the host, standard path to the uplink.
    HostToUplink,
    /// Redirected to a shadow instead of production (redirect mode).
    RedirectedToShadow,
    /// A mirror copy sent to a shadow.
    MirroredToShadow,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 8] = [
        Class::ForwardedToSubstrate,
        Class::DeliveredVmToVm,
        Class::VmToHost,
        Class::DeliveredFromSubstrate,
        Class::UplinkToHost,
        Class::HostToUplink,
        Class::RedirectedToShadow,
        Class::MirroredToShadow,
    ];

    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Class::ForwardedToSubstrate => "forwarded_to_substrate",
            Class::DeliveredVmToVm => "delivered_vm_to_vm",
            Class::VmToHost => "vm_to_host_standard_path",
            Class::DeliveredFromSubstrate => "delivered_from_substrate",
            Class::UplinkToHost => "uplink_to_host_standard_path",
            Class::HostToUplink => "host_to_uplink_standard_path",
            Class::RedirectedToShadow => "redirected_to_shadow",
            Class::MirroredToShadow => "mirrored_to_shadow",
        }
    }

    /// The class of a frame leaving the NIC.
    pub fn of(ingress: Port, f: &OutFrame) -> Class {
        Class::of_frame(ingress, f.port(), f.queue(), f.session())
    }

    /// The class of a frame received on `ingress` leaving `egress` from `queue`, for
    /// `session` when it goes to a shadow.
    pub fn of_frame(ingress: Port, egress: Port, queue: Queue, session: Option<u16>) -> Class {
        if queue == Queue::Mirror {
            return Class::MirroredToShadow;
        }
        Class::of_production(ingress.index(), egress.index(), session.is_some())
    }

    /// [`Class::of_frame`] of a production frame (primary queue) from the port of
    /// [`Port::index`] `ingress` to the port of index `egress`, redirected or not.
    #[inline(always)]
    pub(crate) fn of_production(ingress: usize, egress: usize, redirected: bool) -> Class {
        const PF: usize = shadownet_hw::NUM_VPORTS;
        if redirected {
            return Class::RedirectedToShadow;
        }
        if ingress < PF {
            if egress > PF {
                Class::ForwardedToSubstrate
            } else if egress < PF {
                Class::DeliveredVmToVm
            } else {
                Class::VmToHost
            }
        } else if ingress > PF {
            if egress < PF {
                Class::DeliveredFromSubstrate
            } else {
                Class::UplinkToHost
            }
        } else {
            Class::HostToUplink
        }
    }
}

/// Distribution of latencies in cycles: exact below 4096 cycles, power-of-two buckets above.
///
/// Recording a latency below 4096 cycles (nearly all of them) is one bucket increment: the
/// count, sum and extremes of those are computed from the exact buckets when asked for, and
/// only the latencies above keep running totals.
#[derive(Clone, Debug)]
pub struct Histogram {
    /// Boxed array, not `Vec`: indexing it below [`EXACT`] needs no bounds check.
    exact: Box<[u64; EXACT as usize]>,
    log: [u64; 64],
    /// Latencies of [`EXACT`] cycles or more: how many, their sum and extremes.
    big_count: u64,
    big_sum: u128,
    big_min: u64,
    big_max: u64,
}

const EXACT: u64 = 4096;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            exact: Box::new([0; EXACT as usize]),
            log: [0; 64],
            big_count: 0,
            big_sum: 0,
            big_min: u64::MAX,
            big_max: 0,
        }
    }
}

impl Histogram {
    /// Records one latency.
    #[inline(always)]
    pub fn record(&mut self, cycles: u64) {
        if cycles < EXACT {
            self.exact[cycles as usize] += 1;
        } else {
            self.record_big(cycles);
        }
    }

    fn record_big(&mut self, cycles: u64) {
        self.log[63 - cycles.leading_zeros() as usize] += 1;
        self.big_count += 1;
        self.big_sum += cycles as u128;
        self.big_min = self.big_min.min(cycles);
        self.big_max = self.big_max.max(cycles);
    }

    /// Number of latencies recorded.
    pub fn count(&self) -> u64 {
        self.exact.iter().sum::<u64>() + self.big_count
    }

    /// Smallest latency (0 when empty).
    pub fn min(&self) -> u64 {
        match self.exact.iter().position(|&n| n > 0) {
            Some(c) => c as u64,
            None if self.big_count > 0 => self.big_min,
            None => 0,
        }
    }

    /// Largest latency.
    pub fn max(&self) -> u64 {
        if self.big_count > 0 {
            self.big_max
        } else {
            self.exact
                .iter()
                .rposition(|&n| n > 0)
                .map_or(0, |c| c as u64)
        }
    }

    /// Sum of the latencies recorded.
    fn sum(&self) -> u128 {
        let exact: u128 = self
            .exact
            .iter()
            .enumerate()
            .map(|(c, &n)| c as u128 * n as u128)
            .sum();
        exact + self.big_sum
    }

    /// Mean latency.
    pub fn mean(&self) -> f64 {
        let count = self.count();
        if count == 0 {
            0.0
        } else {
            self.sum() as f64 / count as f64
        }
    }

    /// The latency at or below which `q` (0..=1) of the samples lie; above 4096 cycles,
    /// the upper edge of the power-of-two bucket.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (c, &n) in self.exact.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return c as u64;
            }
        }
        for (b, &n) in self.log.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return ((1u128 << (b + 1)) - 1).min(self.big_max as u128) as u64;
            }
        }
        self.max()
    }
}

/// What happened over a run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// First frame received (ps).
    pub first_arrival_ps: Option<u64>,
    /// Latest event seen (ps).
    pub last_event_ps: u64,
    /// End of the last transmission (ps).
    pub last_tx_end_ps: u64,
    /// Ingress to start of transmission, production frames.
    pub primary_latency: Histogram,
    /// Ingress to start of transmission, mirror copies.
    pub mirror_latency: Histogram,
    /// Production frames transmitted.
    pub tx_frames: u64,
    /// Production bytes transmitted.
    pub tx_bytes: u64,
    /// Copies transmitted.
    pub mirror_frames: u64,
    /// Copy bytes transmitted.
    pub mirror_bytes: u64,
    /// Production frames dropped.
    pub primary_drops: u64,
    /// Copies dropped.
    pub mirror_drops: u64,
    /// Per-port production frames transmitted, by port index.
    pub tx_by_port: Vec<u64>,
    /// Frames transmitted by class, indexed by `Class as usize`.
    pub classes: [u64; Class::ALL.len()],
}

impl RunStats {
    pub(crate) fn saw(&mut self, t: u64) {
        if self.first_arrival_ps.is_none() {
            self.first_arrival_ps = Some(t);
        }
        self.last_event_ps = self.last_event_ps.max(t);
    }

    pub(crate) fn dropped(&mut self, copy: bool) {
        if copy {
            self.mirror_drops += 1;
        } else {
            self.primary_drops += 1;
        }
    }

    #[inline(always)]
    pub(crate) fn transmitted(
        &mut self,
        class: Class,
        mirror: bool,
        port: Port,
        len: usize,
        latency_cycles: u64,
        end_ps: u64,
    ) {
        self.classes[class as usize] += 1;
        if mirror {
            self.mirror_frames += 1;
            self.mirror_bytes += len as u64;
            self.mirror_latency.record(latency_cycles);
        } else {
            self.tx_frames += 1;
            self.tx_bytes += len as u64;
            self.primary_latency.record(latency_cycles);
            self.count_by_port(port.index());
        }
        self.last_tx_end_ps = self.last_tx_end_ps.max(end_ps);
        self.last_event_ps = self.last_event_ps.max(end_ps);
    }

    /// Counts a production frame transmitted by the port of index `port`: one look at the
    /// per-port list (empty until the first production frame) in the common case.
    #[inline(always)]
    fn count_by_port(&mut self, port: usize) {
        match self.tx_by_port.get_mut(port) {
            Some(n) => *n += 1,
            None => self.count_first_by_port(port),
        }
    }

    /// [`RunStats::count_by_port`] when the list is still empty (or the index past it).
    #[cold]
    fn count_first_by_port(&mut self, port: usize) {
        if self.tx_by_port.is_empty() {
            self.tx_by_port = vec![0; Port::COUNT];
        }
        if let Some(n) = self.tx_by_port.get_mut(port) {
            *n += 1;
        }
    }

    /// Simulated time from the first arrival to the end of the last transmission (ps).
    pub fn span_ps(&self) -> u64 {
        self.last_tx_end_ps
            .max(self.last_event_ps)
            .saturating_sub(self.first_arrival_ps.unwrap_or(0))
    }

    /// Counts a production transmission of the departures being tallied in `t` (see
    /// [`Tally`]): its latency bucket, class and port here, frames and bytes in `t`.
    #[inline(always)]
    pub(crate) fn tally_primary(
        &mut self,
        t: &mut Tally,
        class: Class,
        port: usize,
        len: usize,
        latency_cycles: u64,
        end_ps: u64,
    ) {
        self.classes[class as usize] += 1;
        t.tx_frames += 1;
        t.tx_bytes += len as u64;
        self.primary_latency.record(latency_cycles);
        self.count_by_port(port);
        t.last_end = t.last_end.max(end_ps);
    }

    /// Counts a mirror copy's transmission of the departures being tallied in `t`.
    #[inline(always)]
    pub(crate) fn tally_mirror(
        &mut self,
        t: &mut Tally,
        len: usize,
        latency_cycles: u64,
        end_ps: u64,
    ) {
        t.mirror_frames += 1;
        t.mirror_bytes += len as u64;
        self.mirror_latency.record(latency_cycles);
        t.last_end = t.last_end.max(end_ps);
    }

    /// Adds what `t` summed over a run of transmissions: the same totals as
    /// [`RunStats::transmitted`] for each of them.
    pub(crate) fn absorb(&mut self, t: &Tally) {
        self.classes[Class::MirroredToShadow as usize] += t.mirror_frames;
        self.mirror_frames += t.mirror_frames;
        self.mirror_bytes += t.mirror_bytes;
        self.tx_frames += t.tx_frames;
        self.tx_bytes += t.tx_bytes;
        self.last_tx_end_ps = self.last_tx_end_ps.max(t.last_end);
        self.last_event_ps = self.last_event_ps.max(t.last_end);
    }
}

/// Running sums over the departures of one drain, kept in locals (registers) while the
/// departures are counted and added to [`RunStats`] once.
#[derive(Clone, Copy, Default)]
pub(crate) struct Tally {
    tx_frames: u64,
    tx_bytes: u64,
    mirror_frames: u64,
    mirror_bytes: u64,
    last_end: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for c in 1..=100 {
            h.record(c);
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.min(), 1);
        h.record(10_000);
        assert_eq!(h.quantile(1.0), 10_000);
        assert!((h.mean() - (5050.0 + 10_000.0) / 101.0).abs() < 1e-9);
    }

    #[test]
    fn totals_match_the_latencies_recorded() {
        let empty = Histogram::default();
        assert_eq!((empty.count(), empty.min(), empty.max()), (0, 0, 0));
        assert_eq!(empty.mean(), 0.0);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for big_every in [0u64, 1, 7] {
            let mut h = Histogram::default();
            let mut seen = Vec::new();
            for i in 0..5_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let c = if big_every > 0 && i % big_every == 0 {
                    4096 + x % 1_000_000
                } else {
                    x % 4096
                };
                h.record(c);
                seen.push(c);
            }
            let sum: u128 = seen.iter().map(|&c| c as u128).sum();
            assert_eq!(h.count(), seen.len() as u64);
            assert_eq!(h.min(), *seen.iter().min().expect("samples"));
            assert_eq!(h.max(), *seen.iter().max().expect("samples"));
            assert_eq!(h.mean(), sum as f64 / seen.len() as f64);
        }
    }
}
