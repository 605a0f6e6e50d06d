//! Where a shadow's traffic meets its analysis nodes.
//!
//! The NIC delivers a shadow's traffic encapsulated (Geneve or VXLAN with the shadow's VNI;
//! Geneve carries the session, direction, sequence number and the redirect flag). A
//! [`ShadowTap`] takes those frames for one shadow and:
//!
//! - decapsulates them and counts mirror loss from sequence gaps (the shared
//!   [`Decapsulator`] of the offline shadow path);
//! - analyses a frame between two VMs of the NIC once: the NIC copies it twice (leaving one
//!   VM, entering the other), and the second copy would double that traffic in the
//!   detector's statistics ([`Observed::duplicate`]);
//! - hands the inner frame to the built-in detector and collects its alerts;
//! - answers frames addressed to the shadow's honeypots (the replies stay in the shadow);
//! - in redirect mode, is the verdict gate: a redirected frame is released to production
//!   only if neither address is blocked, the pair of addresses has not been detected, and
//!   the detector does not score it as an attack; what the gate refuses stays refused
//!   ([`ShadowTap::block`] adds addresses that a mitigation or another analysis node named).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, Ipv4Addr};

use shadownet_wire::{ParseConfig, SHADOW_DIRECTION_FROM_VM, SHADOW_DIRECTION_TO_VM, parse};

use super::decap::{DecapOptions, DecapStats, Decapsulator, ShadowFrame};

use super::detector::{
    Alert, Detector, DetectorConfig, DetectorError,
    table::{FastHasher, hash_key},
};
use super::honeypot::{Honeypot, HoneypotError, HoneypotSpec, Interaction};

/// Errors of the tap.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The frame is not one of this shadow's copies (malformed, not VXLAN or Geneve, or
    /// another VNI); counted in the tap's decapsulation statistics.
    #[error("not a copy for this shadow (malformed, not tunnelled, or another VNI)")]
    NotThisShadow,
    /// The detector's configuration is wrong.
    #[error("detector: {0}")]
    Detector(#[from] DetectorError),
    /// A honeypot's specification is wrong.
    #[error("honeypot {ip}: {source}")]
    Honeypot {
        /// The honeypot's address.
        ip: std::net::Ipv4Addr,
        /// What is wrong.
        source: HoneypotError,
    },
}

/// The redirect gate's decision about one redirected frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GateVerdict {
    /// Release it to production.
    Release,
    /// Keep it from production: an address of it is blocked, or its pair of addresses was
    /// detected before.
    BlockedSource,
    /// Keep it from production: the detector scores it as an attack (its pair of addresses
    /// is refused from now on).
    Detected {
        /// The detector's score.
        score: f32,
    },
}

/// What one frame produced.
#[derive(Debug, Default)]
pub struct Observed {
    /// Alerts the detector raised.
    pub alerts: Vec<Alert>,
    /// Honeypot replies (inner frames, to be sent back into the shadow).
    pub replies: Vec<Vec<u8>>,
    /// For a redirected frame: the gate's decision.
    pub verdict: Option<GateVerdict>,
    /// The frame is the second mirror copy of one production frame (its copy in the other
    /// direction came within [`DUPLICATE_WINDOW_NS`]): it was not analysed again.
    pub duplicate: bool,
}

/// How far apart the two copies of one frame (leaving a VM of the NIC, entering another)
/// may reach the tap and still be recognised as one: the NIC makes both in one pass, but
/// its mirror queue may hold them apart.
pub const DUPLICATE_WINDOW_NS: u64 = 10_000_000;

/// Configuration of a shadow's tap.
#[derive(Debug, Clone)]
pub struct TapConfig {
    /// The shadow's VNI: frames in another VNI are not this shadow's.
    pub vni: u32,
    /// The built-in detector.
    pub detector: DetectorConfig,
    /// Honeypots deployed in the shadow.
    pub honeypots: Vec<HoneypotSpec>,
    /// Score at or above which the gate keeps a redirected frame from production.
    pub gate_score: f32,
}

/// Counters of a tap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames handed to the tap.
    pub frames: u64,
    /// Frames that were not this shadow's (other VNI, not tunnelled, malformed).
    pub rejected: u64,
    /// Frames lost before reaching the tap (sequence gaps).
    pub lost: u64,
    /// Redirected frames released to production.
    pub released: u64,
    /// Redirected frames kept from production.
    pub withheld: u64,
    /// Honeypot replies generated.
    pub honeypot_replies: u64,
    /// Second copies of a frame between two VMs of the NIC, not analysed again.
    pub duplicates: u64,
}

/// Recent mirror copies by their inner frame's hash, to pair the two copies of a frame that
/// went from one VM of the NIC to another.
#[derive(Default)]
struct CopyPairs {
    /// Hash → (direction of the copy, when it came).
    waiting: HashMap<u64, (u8, u64), BuildHasherDefault<FastHasher>>,
    /// Arrival order, for expiry.
    order: VecDeque<(u64, u64)>,
}

impl CopyPairs {
    /// Whether this copy (direction `dir`, at `ts_ns`) is the second of a pair; else it
    /// waits for its partner.
    fn is_second(&mut self, inner: &[u8], dir: u8, ts_ns: u64) -> bool {
        while let Some(&(t, h)) = self.order.front() {
            if ts_ns.saturating_sub(t) <= DUPLICATE_WINDOW_NS {
                break;
            }
            self.order.pop_front();
            if self.waiting.get(&h).is_some_and(|&(_, w)| w == t) {
                self.waiting.remove(&h);
            }
        }
        let h = hash_key(&inner);
        match self.waiting.get(&h) {
            Some(&(d, _)) if d != dir => {
                self.waiting.remove(&h);
                true
            }
            _ => {
                self.waiting.insert(h, (dir, ts_ns));
                self.order.push_back((ts_ns, h));
                false
            }
        }
    }
}

/// The analysis side of one shadow.
pub struct ShadowTap {
    cfg: TapConfig,
    detector: Detector,
    honeypots: Vec<Honeypot>,
    decap: Decapsulator,
    blocked: HashSet<IpAddr>,
    /// Address pairs (lower first) the detector named: the gate's verdict is per pair, so a
    /// production VM an attack touches keeps its other traffic.
    detected: HashSet<(IpAddr, IpAddr)>,
    pairs: CopyPairs,
    stats: TapStats,
}

impl ShadowTap {
    /// Builds the tap with a fresh detector (it learns its baseline from the first traffic).
    pub fn new(cfg: TapConfig) -> Result<ShadowTap, TapError> {
        // The tap decapsulates; the detector must see the inner frame as it is.
        let detector = Detector::new(DetectorConfig {
            vxlan_port: 0,
            geneve_port: 0,
            ..cfg.detector.clone()
        })?;
        let honeypots = cfg
            .honeypots
            .iter()
            .map(|s| {
                Honeypot::new(s.clone()).map_err(|source| TapError::Honeypot { ip: s.ip, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ShadowTap {
            decap: Decapsulator::new(DecapOptions {
                vni: Some(cfg.vni),
                ..DecapOptions::default()
            }),
            cfg,
            detector,
            honeypots,
            blocked: HashSet::new(),
            detected: HashSet::new(),
            pairs: CopyPairs::default(),
            stats: TapStats::default(),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> TapStats {
        TapStats {
            lost: self.decap.stats().lost(),
            ..self.stats
        }
    }

    /// Decapsulation statistics: per-session sequences, directions, rejected frames.
    pub fn decap_stats(&self) -> &DecapStats {
        self.decap.stats()
    }

    /// The detector (its statistics and baseline).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The honeypots' interactions so far, taken, each with the address of the honeypot it
    /// was with.
    pub fn take_interactions(&mut self) -> Vec<(Ipv4Addr, Interaction)> {
        self.honeypots
            .iter_mut()
            .flat_map(|h| {
                let ip = h.spec().ip;
                h.take_interactions().into_iter().map(move |i| (ip, i))
            })
            .collect()
    }

    /// Makes the gate refuse every later redirected frame from `src`.
    pub fn block(&mut self, src: IpAddr) {
        self.blocked.insert(src);
    }

    /// Sources the gate refuses.
    pub fn blocked(&self) -> impl Iterator<Item = &IpAddr> {
        self.blocked.iter()
    }

    /// Address pairs the detector named (the gate refuses frames between them).
    pub fn detected_pairs(&self) -> impl Iterator<Item = &(IpAddr, IpAddr)> {
        self.detected.iter()
    }

    /// Takes one frame the NIC sent toward the shadow, captured at `ts_ns`.
    pub fn observe_encapsulated(&mut self, ts_ns: u64, frame: &[u8]) -> Result<Observed, TapError> {
        self.stats.frames += 1;
        let Some(shadow) = self.decap.frame(frame) else {
            self.stats.rejected += 1;
            return Err(TapError::NotThisShadow);
        };
        Ok(self.observe_decapsulated(ts_ns, &shadow))
    }

    /// Takes one already decapsulated shadow frame (from a local replica port); its
    /// sequence is not accounted here.
    pub fn observe_decapsulated(&mut self, ts_ns: u64, frame: &ShadowFrame<'_>) -> Observed {
        let mut out = Observed::default();
        if let Some(m) = frame.meta
            && !frame.redirected()
            && (m.direction == SHADOW_DIRECTION_TO_VM || m.direction == SHADOW_DIRECTION_FROM_VM)
            && self.pairs.is_second(frame.inner, m.direction, ts_ns)
        {
            self.stats.duplicates += 1;
            out.duplicate = true;
            return out;
        }
        // Malformed inner frames are counted by the detector; the gate still decides.
        let verdict = self
            .detector
            .observe_frame(ts_ns, frame.inner)
            .unwrap_or_default();
        out.alerts = self.detector.take_alerts();
        for h in &mut self.honeypots {
            let replies = h.handle(frame.inner, ts_ns);
            self.stats.honeypot_replies += replies.len() as u64;
            out.replies.extend(replies);
        }
        if frame.redirected() {
            let addrs = parse(
                frame.inner,
                &ParseConfig {
                    vxlan_port: 0,
                    geneve_port: 0,
                },
            )
            .ok()
            .map(|h| (h.src_ip(), h.dst_ip()));
            let (src, dst) = addrs.unwrap_or((None, None));
            // An alert on this frame counts as the verdict even when the frame's own score
            // stays below the gate's: alerts also come from rate and pattern statistics.
            let alerted = out
                .alerts
                .iter()
                .filter(|a| Some(a.src) == src)
                .map(|a| a.score)
                .reduce(f32::max);
            let refused = |ip: Option<IpAddr>| ip.is_some_and(|ip| self.blocked.contains(&ip));
            let pair_detected = match (src, dst) {
                (Some(a), Some(b)) => self.detected.contains(&pair(a, b)),
                _ => false,
            };
            let decision = match (src, verdict) {
                (Some(_), _) if alerted.is_some() => GateVerdict::Detected {
                    score: alerted.unwrap_or_default(),
                },
                // Nothing to or from a blocked address passes, as the ACL's block rules.
                _ if refused(src) || refused(dst) || pair_detected => GateVerdict::BlockedSource,
                (Some(a), Some(v)) if !v.learning && v.score >= self.cfg.gate_score => {
                    // A detected attack's later packets never reach production, whatever their
                    // own score.
                    if let Some(b) = dst {
                        self.detected.insert(pair(a, b));
                    }
                    GateVerdict::Detected { score: v.score }
                }
                _ => GateVerdict::Release,
            };
            match decision {
                GateVerdict::Release => self.stats.released += 1,
                _ => self.stats.withheld += 1,
            }
            out.verdict = Some(decision);
        }
        // An alert's pair of addresses is refused from now on.
        self.detected
            .extend(out.alerts.iter().map(|a| pair(a.src, a.dst)));
        out
    }
}

/// A pair of addresses in a fixed order, whichever way the frame goes.
fn pair(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests;
