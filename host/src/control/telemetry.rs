//! The NIC's telemetry ring as the control plane reads it: the heavy hitters (top-K flows by
//! packets) of the last export are kept, so a finding can say whether its flow is one of
//! them (correlation, R8), and every record read is kept for [`Controller::take_telemetry`],
//! so reading the ring for correlation takes nothing away from another consumer.

use std::{collections::VecDeque, net::IpAddr};

use serde::{Deserialize, Serialize};
use shadownet_wire::{Headers, L4};
use utoipa::ToSchema;

use super::Controller;
use crate::driver::{Device, TelemetryRecord};

/// Records kept for [`Controller::take_telemetry`] at most; older ones are dropped (and
/// counted) when nobody takes them.
const PENDING_MAX: usize = 65_536;

/// A finding's flow among the NIC's heavy hitters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeavyHitter {
    /// 0 for the interval's largest flow, then 1, 2, …
    pub rank: u16,
    /// The flow hash the NIC names it by.
    pub flow: u32,
    /// Estimated packets in the interval (never below the truth).
    pub packets: u64,
    /// Estimated bytes in the interval.
    pub bytes: u64,
    /// Device cycle of the export that ended the interval.
    pub cycle: u64,
    /// `alerted` when the heavy flow runs in the direction of the alerting packet,
    /// `reverse` when it is the answer to it.
    pub direction: String,
}

/// What the controller keeps of the telemetry ring.
#[derive(Debug, Default)]
pub(super) struct TelemetryCache {
    /// Records read and not yet taken.
    pending: VecDeque<TelemetryRecord>,
    /// Records dropped from `pending` because nobody took them.
    dropped: u64,
    /// Heavy hitters of the export being read (until its heartbeat).
    partial: Vec<(u16, u32, u64, u64, u64)>,
    /// Heavy hitters of the last complete export: rank, flow, packets, bytes, cycle.
    heavy: Vec<(u16, u32, u64, u64, u64)>,
}

impl TelemetryCache {
    fn push(&mut self, r: TelemetryRecord) {
        match r {
            TelemetryRecord::HeavyHitter {
                rank,
                flow,
                cycle,
                packets,
                bytes,
            } => self.partial.push((rank, flow, packets, bytes, cycle)),
            // The heartbeat ends every export: its heavy hitters are complete (an export
            // without any means no flow was sampled in the interval).
            TelemetryRecord::Heartbeat { .. } => self.heavy = std::mem::take(&mut self.partial),
            _ => {}
        }
        if self.pending.len() == PENDING_MAX {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back(r);
    }
}

/// The flow hash the NIC gives a flow (`shadownet_sim::datapath::flow_hash` over the inner
/// headers), from the fields an EVE alert carries.
pub fn flow_hash(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> u32 {
    let v6 = |a: IpAddr| match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let h = Headers {
        src: v6(src),
        dst: v6(dst),
        protocol: proto,
        l4: match proto {
            6 => L4::Tcp {
                sport,
                dport,
                flags: 0,
            },
            17 => L4::Udp { sport, dport },
            _ => Headers::default().l4,
        },
        ..Headers::default()
    };
    shadownet_sim::datapath::flow_hash(&h)
}

/// An EVE `proto` as an IP protocol number.
pub(super) fn protocol_number(p: &str) -> Option<u8> {
    match p.to_ascii_uppercase().as_str() {
        "TCP" => Some(6),
        "UDP" => Some(17),
        "ICMP" => Some(1),
        "IPV6-ICMP" | "ICMPV6" => Some(58),
        other => other.parse().ok(),
    }
}

impl<D: Device> Controller<D> {
    /// Reads what the telemetry ring holds into the cache; `false` when the ring is not
    /// enabled. A record the driver cannot decode is logged and skipped.
    fn read_telemetry(&mut self) -> bool {
        let mut out = Vec::new();
        let r = self.nic.poll_telemetry(&mut out);
        for rec in out {
            self.telemetry.push(rec);
        }
        match r {
            Ok(_) => true,
            Err(crate::driver::DriverError::TelemetryNotEnabled { .. }) => false,
            Err(e) => {
                tracing::warn!(%e, "telemetry ring");
                true
            }
        }
    }

    /// Asks the NIC for a telemetry export and reads it, so the heavy hitters are those of
    /// the interval up to now; `false` when the telemetry ring is not enabled.
    pub(super) fn refresh_heavy_hitters(&mut self) -> bool {
        if self.nic.request_telemetry().is_err() {
            return false;
        }
        self.nic.device().relax();
        self.read_telemetry()
    }

    /// The finding's flow among the last export's heavy hitters, either way round.
    pub(super) fn heavy_hitter_of(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> Option<HeavyHitter> {
        let fwd = flow_hash(src, dst, proto, sport, dport);
        let rev = flow_hash(dst, src, proto, dport, sport);
        self.telemetry
            .heavy
            .iter()
            .find_map(|&(rank, flow, packets, bytes, cycle)| {
                let direction = if flow == fwd {
                    "alerted"
                } else if flow == rev {
                    "reverse"
                } else {
                    return None;
                };
                Some(HeavyHitter {
                    rank,
                    flow,
                    packets,
                    bytes,
                    cycle,
                    direction: direction.into(),
                })
            })
    }

    /// Every telemetry record read since the last call (the controller reads the ring when
    /// it correlates findings; this hands those records, and any newer ones, to whoever
    /// else consumes telemetry), and how many were dropped because nobody took them.
    pub fn take_telemetry(&mut self) -> (Vec<TelemetryRecord>, u64) {
        self.read_telemetry();
        let dropped = std::mem::take(&mut self.telemetry.dropped);
        (self.telemetry.pending.drain(..).collect(), dropped)
    }
}
