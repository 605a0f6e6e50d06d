//! The built-in streaming anomaly detector.
//!
//! It reads shadow traffic packet by packet ([`Detector::observe`] for parsed packets,
//! [`Detector::observe_frame`] for frames) and keeps, in fixed memory:
//!
//! - AfterImage-style damped statistics (Kitsune, NDSS 2018) of packet sizes and rates in
//!   the windows the features read (of λ = 5, 3, 1, 0.1 per second, see [`damped`]) per source host, per
//!   host pair (both directions, with their covariance and correlation), per flow
//!   (5-tuple), and per initiator host and service port (with its fan-out);
//! - sketches ([`sketch`]): a decayed count-min with heavy hitters for SYNs per destination,
//!   HyperLogLog counts of the ports, hosts and admin-port hosts each source opens flows to,
//!   a Bloom filter of the host pairs seen in the baseline;
//! - per-host DNS request and response bytes, per-pair established connections, burst
//!   inter-arrival regularity per direction of a pair, per-flow duration and bytes.
//!
//! For the first [`DetectorConfig::baseline_s`] seconds it learns: the first quarter fixes
//! the feature ranges, the rest fills the mass profile of the half-space trees ([`hst`]) and
//! the baseline mean and spread of every rule feature; the last quarter also calibrates the
//! trees' scores. After that it scores every packet: each attack class has a rule feature
//! whose z-score against the baseline is the class score, the trees give a generic anomaly
//! score, and the packet's score is the largest of them ([`Verdict`]). A score at or above
//! [`DetectorConfig::alert_threshold`] raises an [`Alert`] with the features that moved,
//! at most one per subject and class every [`DetectorConfig::alert_interval_s`].
//!
//! Memory is bounded by the table capacities in the configuration; when a table is full,
//! idle entries are evicted first, then the least recently seen ones ([`table`]).

pub mod damped;
pub mod fastmath;
pub mod hst;
mod meta;
pub mod sketch;
pub mod table;

use core::net::IpAddr;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shadownet_wire::{ParseConfig, ParseError, tcp::flags};

pub use meta::{PacketMeta, ip_key, key_ip};

use damped::{DampedCounter, DampedCov, DampedStats};
use hst::HsTrees;
use sketch::{Bloom, DecayedCountMin, HllRegisters, WindowedHll, hash128, mix64};
use table::{BoundedMap, Stamped};

/// Why the detector refused a configuration or a frame.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The frame is malformed (the NIC's parser would drop it).
    #[error("malformed frame: {0}")]
    Frame(#[from] ParseError),
    /// A configuration field is out of range.
    #[error("invalid detector configuration: {field} {problem}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Tunables. [`Default`] is what the tests and the benchmark use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Seconds of traffic (from the first packet) learnt as the baseline.
    pub baseline_s: f64,
    /// Score at or above which a packet raises an alert.
    pub alert_threshold: f32,
    /// Least seconds between two alerts of the same class about the same subject.
    pub alert_interval_s: f64,
    /// Smallest standard deviation (log2 units) a z-score divides by, so features that were
    /// constant in the baseline do not turn noise into alerts.
    pub z_floor: f64,
    /// Most hosts tracked.
    pub max_hosts: usize,
    /// Most host pairs tracked.
    pub max_pairs: usize,
    /// Most flows tracked.
    pub max_flows: usize,
    /// Most (initiator host, service port) entries tracked.
    pub max_host_ports: usize,
    /// Seconds after which an idle entry may be evicted.
    pub idle_s: f64,
    /// Window (seconds) of the distinct ports and hosts a source opens flows to (scans).
    pub scan_window_s: f64,
    /// Window (seconds) of the distinct hosts a source reaches on admin ports.
    pub fanout_window_s: f64,
    /// Gap (seconds) of silence in one direction of a pair that starts a new burst.
    pub burst_gap_s: f64,
    /// Bursts a new pair needs before its regularity counts (fewer make benign pairs look
    /// regular by chance).
    pub beacon_min_bursts: u32,
    /// Trees in the half-space forest.
    pub hst_trees: usize,
    /// Depth of each tree.
    pub hst_depth: u32,
    /// Seed of the trees.
    pub seed: u64,
    /// VXLAN UDP port the parser looks through (0: none).
    pub vxlan_port: u16,
    /// Geneve UDP port the parser looks through (0: none).
    pub geneve_port: u16,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        let p = ParseConfig::default();
        DetectorConfig {
            baseline_s: 60.0,
            alert_threshold: 6.5,
            alert_interval_s: 10.0,
            z_floor: 0.5,
            max_hosts: 32_768,
            max_pairs: 65_536,
            max_flows: 131_072,
            max_host_ports: 65_536,
            idle_s: 300.0,
            scan_window_s: 10.0,
            fanout_window_s: 120.0,
            burst_gap_s: 1.0,
            beacon_min_bursts: 8,
            hst_trees: 16,
            hst_depth: 10,
            seed: 0x5eed_da7a,
            vxlan_port: p.vxlan_port,
            geneve_port: p.geneve_port,
        }
    }
}

impl DetectorConfig {
    fn validate(&self) -> Result<(), DetectorError> {
        let bad = |field, problem| Err(DetectorError::Config { field, problem });
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if !pos(self.baseline_s) {
            return bad("baseline_s", "must be a positive number of seconds");
        }
        if !(self.alert_threshold.is_finite() && self.alert_threshold > 0.0) {
            return bad("alert_threshold", "must be positive");
        }
        if !(self.alert_interval_s.is_finite() && self.alert_interval_s >= 0.0) {
            return bad("alert_interval_s", "must be zero or more seconds");
        }
        if !pos(self.z_floor) {
            return bad("z_floor", "must be positive");
        }
        for (field, v) in [
            ("idle_s", self.idle_s),
            ("scan_window_s", self.scan_window_s),
            ("fanout_window_s", self.fanout_window_s),
            ("burst_gap_s", self.burst_gap_s),
        ] {
            if !pos(v) {
                return bad(field, "must be a positive number of seconds");
            }
        }
        for (field, v) in [
            ("max_hosts", self.max_hosts),
            ("max_pairs", self.max_pairs),
            ("max_flows", self.max_flows),
            ("max_host_ports", self.max_host_ports),
        ] {
            if !(8..=1 << 26).contains(&v) {
                return bad(field, "must be between 8 and 2^26");
            }
        }
        if !(3..=1_000_000).contains(&self.beacon_min_bursts) {
            return bad("beacon_min_bursts", "must be between 3 and 1000000");
        }
        if !(1..=256).contains(&self.hst_trees) {
            return bad("hst_trees", "must be between 1 and 256");
        }
        if !(2..=16).contains(&self.hst_depth) {
            return bad("hst_depth", "must be between 2 and 16");
        }
        Ok(())
    }
}

/// The attack class a score points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassHint {
    /// SYNs to one destination far above its baseline rate.
    SynFlood,
    /// One source opening flows to many ports or hosts.
    PortScan,
    /// DNS responses to a host far beyond what it asked for.
    DnsAmplification,
    /// Many established, nearly idle connections from one source to one server.
    Slowloris,
    /// Regular bursts between a pair of hosts (command and control, exfiltration).
    Beaconing,
    /// One source reaching many hosts on administrative ports.
    LateralMovement,
    /// Unusual traffic features without a matching rule (the half-space trees).
    Anomaly,
}

impl ClassHint {
    /// All classes, in the order of [`Verdict::class_scores`].
    pub const ALL: [ClassHint; 7] = [
        ClassHint::SynFlood,
        ClassHint::PortScan,
        ClassHint::DnsAmplification,
        ClassHint::Slowloris,
        ClassHint::Beaconing,
        ClassHint::LateralMovement,
        ClassHint::Anomaly,
    ];

    /// Whether alerts of this class concern the destination (the victim of a flood) rather
    /// than the source (often spoofed, or the attacker).
    pub fn about_destination(self) -> bool {
        matches!(self, ClassHint::SynFlood | ClassHint::DnsAmplification)
    }
}

/// Number of classes.
pub const NCLASS: usize = ClassHint::ALL.len();

/// The detector's answer for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the detector is still learning its baseline (scores are then 0).
    pub learning: bool,
    /// The packet's anomaly score: the largest class score (baseline standard deviations).
    pub score: f32,
    /// The class with the largest score.
    pub class_hint: ClassHint,
    /// The score of every class, in the order of [`ClassHint::ALL`]; 0 where a class does
    /// not apply to the packet.
    pub class_scores: [f32; NCLASS],
    /// Whether this packet raised an alert (see [`Detector::take_alerts`]).
    pub alerted: bool,
}

impl Verdict {
    /// The score of `class`.
    pub fn class_score(&self, class: ClassHint) -> f32 {
        let i = ClassHint::ALL.iter().position(|c| *c == class).unwrap_or(0);
        self.class_scores[i]
    }
}

/// One feature that moved, in an alert's explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDeviation {
    /// Feature name.
    pub feature: String,
    /// Its baseline mean (in the feature's own unit).
    pub baseline: f64,
    /// Its value for the packet that raised the alert.
    pub observed: f64,
    /// Baseline standard deviations between the two (on the log scale the detector uses).
    pub z: f64,
}

/// An anomaly alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Time of the packet that raised it.
    pub ts_ns: u64,
    /// Its score.
    pub score: f32,
    /// The class it points at.
    pub class_hint: ClassHint,
    /// Source address of the packet.
    pub src: IpAddr,
    /// Destination address of the packet.
    pub dst: IpAddr,
    /// IP protocol of the packet.
    pub proto: u8,
    /// Source port of the packet.
    pub sport: u16,
    /// Destination port of the packet.
    pub dport: u16,
    /// The features that moved, most deviant first.
    pub explanation: Vec<FeatureDeviation>,
    /// The packet went from its flow's responder to the flow's initiator (an answer): the
    /// initiator is `dst`, which is what correlation must act on.
    pub answer: bool,
}

/// Counters of what the detector has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorStats {
    /// Packets observed.
    pub packets: u64,
    /// Frames that were well formed but not IP.
    pub not_ip: u64,
    /// Frames refused as malformed.
    pub malformed: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts suppressed by the per-subject rate limit.
    pub alerts_suppressed: u64,
    /// Hosts, pairs, flows and host-ports tracked now.
    pub tracked: [u64; 4],
    /// Entries evicted from those tables so far.
    pub evicted: [u64; 4],
}

// ---------------------------------------------------------------------------------------
// Features

/// How a feature value relates to the quantity it names (for explanations).
#[derive(Clone, Copy)]
enum Unit {
    /// The feature is `log2(1 + q)`.
    Log1p,
    /// The feature is `log2(q)`.
    Log,
    /// The feature is `q`.
    Plain,
}

impl Unit {
    fn natural(self, v: f64) -> f64 {
        match self {
            Unit::Log1p => v.exp2() - 1.0,
            Unit::Log => v.exp2(),
            Unit::Plain => v,
        }
    }
}

/// Rule features: named per-packet scalars with a learnt baseline.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
enum Rf {
    SynRateToDst,
    HalfOpenRatio,
    SynRateFromSrc,
    PortsBySrc,
    HostsBySrc,
    DnsRespRate,
    DnsRespReqRatio,
    DnsPairRatio,
    OpenConnsPair,
    FlowByteRate,
    BurstRegularity,
    PairBytesOutIn,
    AdminHostsBySrc,
    NewPair,
    HstAnomaly,
}

const NRF: usize = 15;

const RF_INFO: [(&str, Unit); NRF] = [
    ("syn_rate_to_dst_per_s", Unit::Log1p),
    ("syn_to_synack_ratio_dst", Unit::Log),
    ("syn_rate_from_src_per_s", Unit::Log1p),
    ("distinct_dst_ports_opened_by_src", Unit::Log1p),
    ("distinct_hosts_opened_by_src", Unit::Log1p),
    ("dns_response_bytes_to_dst_per_s", Unit::Log1p),
    ("dns_response_to_request_bytes_dst", Unit::Log),
    ("dns_bytes_from_server_over_to_server", Unit::Log),
    ("established_conns_src_to_dst", Unit::Log1p),
    ("flow_bytes_per_s", Unit::Log1p),
    ("burst_interval_median_over_mad", Unit::Log),
    ("pair_bytes_out_over_in", Unit::Log),
    ("admin_port_hosts_by_src_all_and_new_log2", Unit::Plain),
    ("pair_new_since_baseline", Unit::Plain),
    ("hst_anomaly_log2", Unit::Plain),
];

/// The rule feature behind each class score (and the supporting ones an alert explains).
const CLASS_RULES: [(Rf, &[Rf]); NCLASS] = [
    (Rf::SynRateToDst, &[Rf::HalfOpenRatio, Rf::SynRateFromSrc]),
    (Rf::PortsBySrc, &[Rf::HostsBySrc]),
    (Rf::DnsRespRate, &[Rf::DnsRespReqRatio, Rf::DnsPairRatio]),
    (Rf::OpenConnsPair, &[Rf::FlowByteRate]),
    (Rf::BurstRegularity, &[Rf::PairBytesOutIn]),
    (Rf::AdminHostsBySrc, &[Rf::NewPair]),
    (Rf::HstAnomaly, &[]),
];

/// Running mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default)]
struct Welford {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Welford {
    #[inline]
    fn add(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn std(&self) -> f64 {
        if self.n > 1.0 {
            (self.m2 / (self.n - 1.0)).sqrt()
        } else {
            0.0
        }
    }
}

/// Dimensions of the half-space trees' feature vector.
const HD: usize = 22;

const HST_NAMES: [&str; HD] = [
    "src_pkts_l5",
    "src_pkts_l3",
    "src_pkts_l1",
    "src_pkts_l0.1",
    "src_size_std_l0.1",
    "src_size_mean_l1",
    "src_size_mean_l0.1",
    "src_size_std_l1",
    "pair_pkts_l5",
    "pair_pkts_l1",
    "pair_pkts_l0.1",
    "pair_magnitude_l1",
    "pair_radius_l1",
    "pair_pcc_l1",
    "flow_pkts_l5",
    "flow_pkts_l1",
    "flow_size_mean_l1",
    "flow_size_std_l1",
    "flow_size_mean_l5",
    "flow_bytes_per_s",
    "hostport_pkts_l1",
    "hostport_fanout",
];

/// `log2(1 + x)`, negative `x` counting as 0; absolute error below `3e-9`
/// ([`fastmath::log2_1p`]).
#[inline]
fn log2p1(x: f64) -> f64 {
    fastmath::log2_1p(x)
}

/// A fast monotone approximation of `log2(1 + x)` for `x ≥ 0` (error below 0.09): the
/// float's exponent and mantissa read as a fixed-point number.
#[inline]
fn flog2p1(x: f64) -> f32 {
    let y = (1.0 + x.max(0.0)) as f32;
    y.to_bits() as f32 * (1.0 / (1u32 << 23) as f32) - 127.0
}

// ---------------------------------------------------------------------------------------
// State

/// A host's hot state, in the order of how many packets touch it (`repr(C)` keeps that
/// order, and the table puts it right after the key): every packet of the host the
/// first lines, an initiator's packets the distinct-count summaries, SYNs and DNS the
/// counters. The counters' registers are its cold part ([`HostCold`]).
#[derive(Debug, Clone, Default)]
#[repr(C)]
struct HostState {
    last_ns: u64,
    size: DampedStats<4>,
    ports: WindowedHll,
    hosts: WindowedHll,
    syn_tx: DampedCounter,
    synack_tx: DampedCounter,
    admin_hosts: WindowedHll,
    /// Admin-port hosts this host had not talked to in the baseline.
    novel_admin_hosts: WindowedHll,
    dns_req_tx: DampedCounter,
    dns_resp_rx: DampedCounter,
    /// Seen in the baseline (looked up in the Bloom filter once, when the entry is made).
    known: bool,
}

/// The registers of a host's distinct counters (ports, hosts, admin-port hosts, novel
/// admin-port hosts), written only on a flow's first packet from the host.
type HostCold = [HllRegisters; 4];

impl Stamped for HostState {
    fn last_seen_ns(&self) -> u64 {
        self.last_ns
    }
}

/// Windows (decay factors per second, see [`damped`]) of the packet sizes of a host: what
/// the trees read. Not the slowest of [`damped::LAMBDAS`]: its 100 s half-life is longer
/// than the baseline.
const HOST_LAMBDAS: [f64; 4] = [5.0, 3.0, 1.0, 0.1];
/// Windows of a pair's two directions (the trees read all three, and the covariance of the
/// λ = 1 window).
const PAIR_LAMBDAS: [f64; 3] = [5.0, 1.0, 0.1];
/// Windows of a flow's packet sizes.
const FLOW_LAMBDAS: [f64; 2] = [5.0, 1.0];

/// Intervals between bursts a direction of a pair remembers.
const IAT_RING: usize = 16;

#[derive(Debug, Clone, Copy, Default)]
struct Burst {
    last_pkt_ns: u64,
    last_burst_ns: u64,
    bursts: u32,
    /// Regularity of the intervals as of the last burst start (see [`regularity`]).
    regularity: Option<f32>,
}

/// The last intervals between burst starts of one direction of a pair, seconds (a ring
/// indexed by burst count): written and read only at a burst's start, so they are the
/// pair's cold part. A new entry need not clear them: only intervals written since its
/// first burst are read.
type IatRing = [f32; IAT_RING];

impl Burst {
    /// Notes a packet at `ts`; a silence of at least `gap_ns` before it starts a burst, and
    /// a burst start with at least `min_bursts` before it updates the regularity.
    #[inline]
    fn packet(&mut self, iat_ring: &mut IatRing, ts: u64, gap_ns: u64, min_bursts: u32) {
        if self.last_pkt_ns == 0 || ts.saturating_sub(self.last_pkt_ns) >= gap_ns {
            if self.last_burst_ns != 0 {
                let iat = ts.saturating_sub(self.last_burst_ns) as f64 * 1e-9;
                // Interval k (from 0) follows burst k + 1.
                iat_ring[(self.bursts as usize - 1) % IAT_RING] = iat as f32;
            }
            self.bursts = self.bursts.saturating_add(1);
            self.last_burst_ns = ts;
            if self.bursts >= min_bursts {
                // Intervals 0..n were all written since this entry's first burst.
                let n = (self.bursts as usize - 1).min(IAT_RING);
                self.regularity = Some(regularity(&iat_ring[..n]));
            }
        }
        self.last_pkt_ns = ts;
    }
}

/// How regular a series of intervals is: `log2(median / (MAD + 1% of the median + 1 ms))`.
/// The median and the median absolute deviation ignore up to half of the intervals, so a
/// beacon whose period is broken now and then by another burst (an upload between two
/// check-ins) stays regular, where a mean and a standard deviation would not.
fn regularity(iat: &[f32]) -> f32 {
    let mut v = [0f32; IAT_RING];
    let n = iat.len().min(IAT_RING);
    if n == 0 {
        return 0.0;
    }
    v[..n].copy_from_slice(&iat[..n]);
    let med = median(&mut v[..n]);
    for x in &mut v[..n] {
        *x = (*x - med).abs();
    }
    let mad = median(&mut v[..n]);
    fastmath::log2_pos(f64::from((med / (mad + 0.01 * med + 0.001)).max(1e-3))) as f32
}

/// Median of a short slice (reorders it).
fn median(v: &mut [f32]) -> f32 {
    let n = v.len();
    v.sort_unstable_by(f32::total_cmp);
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// A pair's hot state (every packet of the pair reads or writes nearly all of it); the
/// burst intervals are its cold part ([`IatRing`], one per direction).
#[derive(Debug, Clone, Default)]
#[repr(C)]
struct PairState {
    last_ns: u64,
    cov: DampedCov<3>,
    bytes: [u64; 2],
    established: [u32; 2],
    burst: [Burst; 2],
    /// Score and class of the last packet with ports in each direction, for the fragments
    /// that follow it.
    frag_carry: [(f32, u8); 2],
    /// First seen after the part of the baseline that defines "known" pairs: during the
    /// baseline, after its first quarter; while scoring, not in the baseline at all.
    novel: bool,
}

impl Stamped for PairState {
    fn last_seen_ns(&self) -> u64 {
        self.last_ns
    }
}

#[derive(Debug, Clone, Default)]
#[repr(C)]
struct FlowState {
    first_ns: u64,
    last_ns: u64,
    size: DampedStats<2>,
    bytes: u64,
    initiator: u8,
    syn: bool,
    synack: bool,
    established: bool,
    /// FIN or RST seen: the connection does not count as established again.
    finished: bool,
    /// Packets seen.
    pkts: u32,
    /// The trees' anomaly score at the flow's last sampled packet (see `hst_sampled`).
    hst_score: Option<f32>,
    /// The score and class (index in [`ClassHint::ALL`]) of the initiator's last packet.
    carry: (f32, u8),
    /// The initiator's distinct ports, hosts and admin-port hosts at its last packet, which
    /// the peer's answers score with (no second host lookup per answer).
    init_counts: [f32; 3],
}

impl Stamped for FlowState {
    fn last_seen_ns(&self) -> u64 {
        self.last_ns
    }
}

/// The hot state of an (initiator host, service port) entry; the fan-out counter's
/// registers are its cold part.
#[derive(Debug, Clone)]
#[repr(C)]
struct HostPortState {
    /// Never 0 (the detector's timestamps are at least 1): the niche lets the table mark an
    /// empty slot without a tag that would take the entry past two cache lines.
    last_ns: core::num::NonZeroU64,
    pkts: DampedCounter,
    fanout: WindowedHll,
}

impl Default for HostPortState {
    fn default() -> Self {
        HostPortState {
            last_ns: core::num::NonZeroU64::MIN,
            pkts: DampedCounter::default(),
            fanout: WindowedHll::default(),
        }
    }
}

impl Stamped for HostPortState {
    fn last_seen_ns(&self) -> u64 {
        self.last_ns.get()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PairKey {
    lo: u128,
    hi: u128,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: u128,
    hi: u128,
    plo: u16,
    phi: u16,
    proto: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct HostPortKey {
    host: u128,
    port: u16,
    proto: u8,
}

/// A packet's table keys and their hashes, computed once: to prefetch the slots ahead of
/// the update and to look them up without hashing again.
struct Keys {
    s: u128,
    d: u128,
    /// 0 when the source sorts first in the flow key (it is `lo`), else 1.
    dir: u8,
    flow: FlowKey,
    pair: PairKey,
    flow_h: u64,
    pair_h: u64,
    src_h: u64,
    dst_h: u64,
    /// The (host, service port) keys with the source and with the destination as the
    /// initiator: which one applies is only known once the flow entry is read.
    hp: [(HostPortKey, u64); 2],
    /// The destination's host entry is read too (a SYN, a DNS answer).
    dst_used: bool,
}

impl Keys {
    #[inline]
    fn of(m: &PacketMeta) -> Keys {
        let s = ip_key(m.src);
        let d = ip_key(m.dst);
        let (lo, hi, plo, phi, dir) = if (s, m.sport) <= (d, m.dport) {
            (s, d, m.sport, m.dport, 0u8)
        } else {
            (d, s, m.dport, m.sport, 1u8)
        };
        let flow = FlowKey {
            lo,
            hi,
            plo,
            phi,
            proto: m.proto,
        };
        let pair = PairKey { lo, hi };
        let hp = |host, port| {
            let k = HostPortKey {
                host,
                port,
                proto: m.proto,
            };
            (k, table::hash_key(&k))
        };
        Keys {
            s,
            d,
            dir,
            flow,
            pair,
            flow_h: table::hash_key(&flow),
            pair_h: table::hash_key(&pair),
            src_h: table::hash_key(&s),
            dst_h: table::hash_key(&d),
            hp: [hp(s, m.dport), hp(d, m.sport)],
            dst_used: (m.is_tcp() && m.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN)
                || (m.is_udp() && m.sport == DNS_PORT),
        }
    }
}

/// How many packets ahead [`Detector::observe_batch`] prefetches.
const BATCH_AHEAD: usize = 3;

/// Ports of remote administration and file sharing, where lateral movement happens.
const ADMIN_PORTS: [u16; 9] = [22, 23, 135, 139, 445, 3389, 5900, 5985, 5986];

const DNS_PORT: u16 = 53;

/// Decay (per second) of the per-host counters and the SYN sketch.
const RATE_LAMBDA: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Feature ranges are being measured.
    Ranges,
    /// Tree masses and rule baselines are being learnt.
    Mass,
    /// Rule baselines and the trees' score distribution are being learnt.
    Calibrate,
    /// Scoring.
    Score,
}

/// The streaming anomaly detector. See the [module docs](self).
pub struct Detector {
    cfg: DetectorConfig,
    parse: ParseConfig,
    start_ns: Option<u64>,
    phase: Phase,
    hosts: BoundedMap<u128, HostState, HostCold>,
    pairs: BoundedMap<PairKey, PairState, [IatRing; 2]>,
    flows: BoundedMap<FlowKey, FlowState>,
    host_ports: BoundedMap<HostPortKey, HostPortState, HllRegisters>,
    syn_cm: DecayedCountMin,
    baseline_pairs: Bloom,
    hst: HstModel,
    rules: [Welford; NRF],
    /// Factor on the trees' class score that brings the calibration's largest score down
    /// to the alert threshold (1 when it stayed below).
    anomaly_scale: f32,
    last_alert: HashMap<(u128, ClassHint), u64, std::hash::BuildHasherDefault<table::FastHasher>>,
    alerts: Vec<Alert>,
    stats: DetectorStats,
    scan_ns: u64,
    fanout_ns: u64,
    burst_gap_ns: u64,
}

/// Feature values of one packet.
struct Features {
    rule: [Option<f64>; NRF],
    /// The class scores, while scoring.
    class_scores: Option<[f32; NCLASS]>,
    /// The trees' normalised input, when they looked at this packet while scoring.
    hst: Option<[f32; HD]>,
    /// The packet answers its flow's initiator.
    answer: bool,
}

/// The half-space trees with the feature ranges that map their input into the unit cube and
/// the calibration statistics of every dimension (for explanations).
struct HstModel {
    trees: HsTrees,
    ntrees: f64,
    lo: [f32; HD],
    hi: [f32; HD],
    scale: [f32; HD],
    dims: [Welford; HD],
    /// Largest anomaly score of the calibration phase.
    calib_max: f64,
}

impl HstModel {
    fn learn_ranges(&mut self, x: &[f32; HD]) {
        for ((lo, hi), &v) in self.lo.iter_mut().zip(&mut self.hi).zip(x) {
            *lo = lo.min(v);
            *hi = hi.max(v);
        }
    }

    /// Widens each range a little so baseline values do not sit on the cube's faces.
    fn fix_ranges(&mut self) {
        for i in 0..HD {
            if self.lo[i] > self.hi[i] {
                self.lo[i] = 0.0;
                self.hi[i] = 1.0;
            }
            let span = (self.hi[i] - self.lo[i]).max(0.5);
            self.lo[i] -= 0.1 * span;
            self.scale[i] = 1.0 / (1.2 * span);
        }
    }

    #[inline]
    fn normalise(&self, x: &[f32; HD]) -> [f32; HD] {
        let mut out = [0f32; HD];
        for i in 0..HD {
            out[i] = (x[i] - self.lo[i]) * self.scale[i];
        }
        out
    }

    /// `-log2` of the trees' mass score, relative to the training size: higher is more
    /// anomalous.
    #[inline]
    fn anomaly(&self, x: &[f32; HD]) -> f64 {
        let s = self.trees.score(x);
        let n = self.trees.trained().max(1) as f64 * self.ntrees;
        -fastmath::log2_pos((s + 1.0) / n)
    }

    /// Learns or scores the raw feature vector `raw` as `phase` asks: the anomaly score and
    /// the normalised vector from the calibration phase on.
    fn process(&mut self, phase: Phase, raw: &[f32; HD]) -> Option<(f64, [f32; HD])> {
        match phase {
            Phase::Ranges => {
                self.learn_ranges(raw);
                None
            }
            Phase::Mass => {
                let x = self.normalise(raw);
                self.trees.learn(&x);
                None
            }
            Phase::Calibrate => {
                let x = self.normalise(raw);
                for (w, v) in self.dims.iter_mut().zip(x) {
                    w.add(f64::from(v));
                }
                let a = self.anomaly(&x);
                self.calib_max = self.calib_max.max(a);
                Some((a, x))
            }
            Phase::Score => {
                let x = self.normalise(raw);
                Some((self.anomaly(&x), x))
            }
        }
    }
}

/// Share of the alert threshold up to which an answer carries its initiator's score.
const CARRY_CAP: f32 = 0.95;

#[inline]
fn z_of(rules: &[Welford; NRF], z_floor: f64, rf: Rf, v: f64) -> f64 {
    let w = &rules[rf as usize];
    (v - w.mean) / w.std().max(z_floor)
}

/// The class with the largest score (the trees' class when all are 0) and that score.
#[inline]
fn best_class(cs: &[f32; NCLASS]) -> (usize, f32) {
    cs.iter().enumerate().fold(
        (NCLASS - 1, 0f32),
        |acc, (i, s)| if *s > acc.1 { (i, *s) } else { acc },
    )
}

/// Every class score of a packet from its rule features: the z-score of the class's main
/// feature against the baseline, with the corrections below.
fn class_scores_of(
    rules: &[Welford; NRF],
    z_floor: f64,
    rule: &[Option<f64>; NRF],
    known_src: bool,
    anomaly_scale: f32,
    threshold: f32,
) -> [f32; NCLASS] {
    let z = |rf: Rf, v: f64| z_of(rules, z_floor, rf, v).max(0.0) as f32;
    let mut class_scores = [0f32; NCLASS];
    for (c, (main, _)) in CLASS_RULES.iter().enumerate() {
        if let Some(v) = rule[*main as usize] {
            class_scores[c] = z(*main, v);
        }
    }
    class_scores[NCLASS - 1] *= anomaly_scale;
    // The trees alone do not alert: on their own their benign tail is too long for the
    // false-positive target. They rank packets (below the threshold) unless a rule feature
    // is half-way to alerting too.
    let rules_top = class_scores[..NCLASS - 1]
        .iter()
        .fold(0f32, |a, b| a.max(*b));
    if rules_top < 0.5 * threshold {
        class_scores[NCLASS - 1] = class_scores[NCLASS - 1].min(CARRY_CAP * threshold);
    }
    // A host that was there in the baseline and sends SYNs at its usual pace is a client
    // of the flooded server, not part of the flood.
    if known_src && let Some(v) = rule[Rf::SynRateFromSrc as usize] {
        class_scores[0] = class_scores[0].min(z(Rf::SynRateFromSrc, v));
    }
    // A DNS flood needs both the volume and the imbalance; the class score is their
    // mean so a busy but balanced resolver client does not look like a victim.
    if let (Some(_), Some(r)) = (
        rule[Rf::DnsRespRate as usize],
        rule[Rf::DnsRespReqRatio as usize],
    ) {
        class_scores[2] = 0.5 * (class_scores[2] + z(Rf::DnsRespReqRatio, r));
    }
    // A resolver the baseline knew answers what it was asked: only its own imbalance
    // towards this client makes it a reflector.
    if known_src && let Some(v) = rule[Rf::DnsPairRatio as usize] {
        class_scores[2] = class_scores[2].min(z(Rf::DnsPairRatio, v));
    }
    class_scores
}

/// Whether the trees look at the `n`th packet of a flow: its first two, then at powers of
/// two and every 64th. Between those the flow keeps its last score, which the trees learn
/// and calibrate on in the same way, so the sampling does not bias the baseline.
#[inline]
fn hst_sampled(n: u32) -> bool {
    n <= 2 || n.is_power_of_two() || n.is_multiple_of(64)
}

/// Every how many packets the trees look again at a flow whose last score would alert
/// (on top of [`hst_sampled`]): often enough that a flow leaves that state within a few
/// packets once its features are back to normal, and not on every packet, which under a
/// flood (every flow looks anomalous) made the trees most of the detector's work. With 8
/// instead of 1, `detector_eval`'s SYN-flood AUC moves by 0.0001 on seeds 11 and 23 and
/// nothing else it prints changes.
const HOT_RESCORE_EVERY: u32 = 8;

fn secs_ns(s: f64) -> u64 {
    (s * 1e9) as u64
}

impl Detector {
    /// A detector with `cfg`, learning from the first packet it sees.
    pub fn new(cfg: DetectorConfig) -> Result<Self, DetectorError> {
        cfg.validate()?;
        let idle = secs_ns(cfg.idle_s);
        Ok(Detector {
            parse: ParseConfig {
                vxlan_port: cfg.vxlan_port,
                geneve_port: cfg.geneve_port,
            },
            start_ns: None,
            phase: Phase::Ranges,
            hosts: BoundedMap::new(cfg.max_hosts, idle),
            pairs: BoundedMap::new(cfg.max_pairs, idle),
            flows: BoundedMap::new(cfg.max_flows, idle),
            host_ports: BoundedMap::new(cfg.max_host_ports, idle),
            syn_cm: DecayedCountMin::new(4096, 4, RATE_LAMBDA, 50_000_000, 16),
            baseline_pairs: Bloom::new(cfg.max_pairs * 16, 4),
            hst: HstModel {
                trees: HsTrees::new(HD, cfg.hst_trees, cfg.hst_depth, cfg.seed),
                ntrees: cfg.hst_trees as f64,
                lo: [f32::INFINITY; HD],
                hi: [f32::NEG_INFINITY; HD],
                scale: [1.0; HD],
                dims: [Welford::default(); HD],
                calib_max: f64::NEG_INFINITY,
            },
            anomaly_scale: 1.0,
            rules: [Welford::default(); NRF],
            last_alert: HashMap::default(),
            alerts: Vec::new(),
            stats: DetectorStats::default(),
            scan_ns: secs_ns(cfg.scan_window_s),
            fanout_ns: secs_ns(cfg.fanout_window_s),
            burst_gap_ns: secs_ns(cfg.burst_gap_s),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Whether the baseline is complete and packets are being scored.
    pub fn is_scoring(&self) -> bool {
        self.phase == Phase::Score
    }

    /// Counters.
    pub fn stats(&self) -> DetectorStats {
        let mut s = self.stats;
        s.tracked = [
            self.hosts.len() as u64,
            self.pairs.len() as u64,
            self.flows.len() as u64,
            self.host_ports.len() as u64,
        ];
        s.evicted = [
            self.hosts.evicted(),
            self.pairs.evicted(),
            self.flows.evicted(),
            self.host_ports.evicted(),
        ];
        s
    }

    /// The learnt baseline of every rule feature: name, mean, standard deviation (on the
    /// log2 scale the detector scores on, except `pair_new_since_baseline` and
    /// `hst_anomaly_log2`) and number of packets it was learnt from.
    pub fn baseline(&self) -> Vec<(&'static str, f64, f64, u64)> {
        RF_INFO
            .iter()
            .zip(&self.rules)
            .map(|((name, _), w)| (*name, w.mean, w.std(), w.n as u64))
            .collect()
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// The destinations receiving the most SYNs now, with their SYN rate per second.
    pub fn syn_heavy_hitters(&self) -> Vec<(IpAddr, f32)> {
        self.syn_cm
            .heavy_hitters()
            .into_iter()
            .map(|(k, c)| (key_ip(k), self.syn_cm.rate(c)))
            .collect()
    }

    /// Observes one Ethernet frame captured at `ts_ns`. `Ok(None)` for frames that are not
    /// IP; an error (and nothing learnt) for malformed frames.
    pub fn observe_frame(
        &mut self,
        ts_ns: u64,
        frame: &[u8],
    ) -> Result<Option<Verdict>, DetectorError> {
        match PacketMeta::from_frame(ts_ns, frame, &self.parse) {
            Ok(Some(m)) => Ok(Some(self.observe(&m))),
            Ok(None) => {
                self.stats.not_ip += 1;
                Ok(None)
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e.into())
            }
        }
    }

    /// Observes one packet: updates the state, learns or scores.
    pub fn observe(&mut self, m: &PacketMeta) -> Verdict {
        let k = Keys::of(m);
        self.prefetch(&k);
        self.observe_keyed(m, &k)
    }

    /// [`Detector::observe`] with the packet's keys computed (and its slots prefetched).
    fn observe_keyed(&mut self, m: &PacketMeta, k: &Keys) -> Verdict {
        self.stats.packets += 1;
        let ts = m.ts_ns.max(1);
        let start = *self.start_ns.get_or_insert(ts);
        self.advance_phase(ts.saturating_sub(start));
        let f = self.update(m, k, ts);
        match self.phase {
            Phase::Ranges => self.learning_verdict(),
            Phase::Mass | Phase::Calibrate => {
                self.learn_rules(&f.rule);
                self.learning_verdict()
            }
            Phase::Score => {
                let cs = f.class_scores.unwrap_or([0.0; NCLASS]);
                self.score(m, ts, &f, cs)
            }
        }
    }

    fn learning_verdict(&self) -> Verdict {
        Verdict {
            learning: true,
            score: 0.0,
            class_hint: ClassHint::Anomaly,
            class_scores: [0.0; NCLASS],
            alerted: false,
        }
    }

    fn advance_phase(&mut self, elapsed_ns: u64) {
        let t = elapsed_ns as f64 * 1e-9;
        let b = self.cfg.baseline_s;
        let next = if t < 0.25 * b {
            Phase::Ranges
        } else if t < 0.75 * b {
            Phase::Mass
        } else if t < b {
            Phase::Calibrate
        } else {
            Phase::Score
        };
        if next == self.phase {
            return;
        }
        if self.phase == Phase::Ranges {
            self.hst.fix_ranges();
        }
        if next == Phase::Calibrate || next == Phase::Score {
            // Stop descending below 0.1% of the learnt mass (at least 2 packets).
            let limit = (self.hst.trees.trained() / 1000).clamp(2, u64::from(u32::MAX));
            self.hst.trees.set_size_limit(limit as u32);
        }
        if next == Phase::Score {
            // The trees' scores have a long benign tail that a z-score does not capture:
            // calibrate their class so that the largest baseline score sits at the threshold.
            let zmax = self.z(Rf::HstAnomaly, self.hst.calib_max);
            let thr = f64::from(self.cfg.alert_threshold);
            self.anomaly_scale = if zmax.is_finite() && zmax > thr {
                (thr / zmax) as f32
            } else {
                1.0
            };
            tracing::info!(
                anomaly_scale = self.anomaly_scale,
                packets = self.stats.packets,
                trained = self.hst.trees.trained(),
                "detector baseline learnt; scoring"
            );
        }
        self.phase = next;
    }

    fn learn_rules(&mut self, rule: &[Option<f64>; NRF]) {
        for (w, v) in self.rules.iter_mut().zip(rule) {
            if let Some(v) = v {
                w.add(*v);
            }
        }
    }

    #[inline]
    fn z(&self, rf: Rf, v: f64) -> f64 {
        let w = &self.rules[rf as usize];
        (v - w.mean) / w.std().max(self.cfg.z_floor)
    }

    fn score(
        &mut self,
        m: &PacketMeta,
        ts: u64,
        f: &Features,
        class_scores: [f32; NCLASS],
    ) -> Verdict {
        let (best, score) = best_class(&class_scores);
        let class_hint = ClassHint::ALL[best];
        let mut alerted = false;
        if score >= self.cfg.alert_threshold {
            alerted = self.raise(m, ts, score, class_hint, f);
        }
        Verdict {
            learning: false,
            score,
            class_hint,
            class_scores,
            alerted,
        }
    }

    fn raise(
        &mut self,
        m: &PacketMeta,
        ts: u64,
        score: f32,
        class: ClassHint,
        f: &Features,
    ) -> bool {
        let (rule, x) = (&f.rule, f.hst.as_ref());
        let subject = ip_key(if class.about_destination() {
            m.dst
        } else {
            m.src
        });
        let interval = secs_ns(self.cfg.alert_interval_s);
        if let Some(&last) = self.last_alert.get(&(subject, class))
            && ts.saturating_sub(last) < interval
        {
            self.stats.alerts_suppressed += 1;
            return false;
        }
        if self.last_alert.len() >= 65_536 {
            let cutoff = ts.saturating_sub(interval);
            self.last_alert.retain(|_, t| *t >= cutoff);
        }
        self.last_alert.insert((subject, class), ts);

        let mut explanation = Vec::new();
        let i = ClassHint::ALL.iter().position(|c| *c == class).unwrap_or(0);
        let (main, support) = CLASS_RULES[i];
        for rf in std::iter::once(main).chain(support.iter().copied()) {
            if let Some(v) = rule[rf as usize] {
                let (name, unit) = RF_INFO[rf as usize];
                explanation.push(FeatureDeviation {
                    feature: name.to_owned(),
                    baseline: unit.natural(self.rules[rf as usize].mean),
                    observed: unit.natural(v),
                    z: self.z(rf, v),
                });
            }
        }
        if class == ClassHint::Anomaly
            && let Some(x) = x
        {
            // Which of the trees' dimensions moved furthest from the calibration traffic.
            let mut dims: Vec<FeatureDeviation> = (0..HD)
                .map(|d| {
                    let w = &self.hst.dims[d];
                    FeatureDeviation {
                        feature: HST_NAMES[d].to_owned(),
                        baseline: w.mean,
                        observed: f64::from(x[d]),
                        z: (f64::from(x[d]) - w.mean) / w.std().max(0.01),
                    }
                })
                .collect();
            dims.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
            explanation.extend(dims.into_iter().take(4));
        }
        self.stats.alerts += 1;
        tracing::debug!(?class, score, src = %m.src, dst = %m.dst, "detector alert");
        self.alerts.push(Alert {
            ts_ns: ts,
            score,
            class_hint: class,
            src: m.src,
            dst: m.dst,
            proto: m.proto,
            sport: m.sport,
            dport: m.dport,
            explanation,
            answer: f.answer,
        });
        true
    }

    /// Starts loading every table slot the packet with keys `k` will touch, so that the
    /// cache misses overlap instead of following one another.
    #[inline]
    fn prefetch(&self, k: &Keys) {
        self.flows.prefetch(k.flow_h);
        self.pairs.prefetch(k.pair_h);
        self.hosts.prefetch(k.src_h);
        self.host_ports.prefetch(k.hp[0].1);
        self.host_ports.prefetch(k.hp[1].1);
        if k.dst_used {
            self.hosts.prefetch(k.dst_h);
        }
    }

    /// Observes a batch of packets in order, appending one verdict per packet to `out`:
    /// the same verdicts as [`Detector::observe`] on each in turn, faster, because the table
    /// slots of the packets a few places ahead are fetched from memory while the current one
    /// is worked on.
    pub fn observe_batch(&mut self, pkts: &[PacketMeta], out: &mut Vec<Verdict>) {
        out.reserve(pkts.len());
        let mut ahead: [Option<Keys>; BATCH_AHEAD] = std::array::from_fn(|_| None);
        for (i, m) in pkts.iter().enumerate() {
            // Packet i's keys sit where packet i + BATCH_AHEAD's go next: take them first.
            let k = ahead[i % BATCH_AHEAD].take().unwrap_or_else(|| Keys::of(m));
            if let Some(next) = pkts.get(i + BATCH_AHEAD) {
                let nk = Keys::of(next);
                self.prefetch(&nk);
                ahead[(i + BATCH_AHEAD) % BATCH_AHEAD] = Some(nk);
            }
            out.push(self.observe_keyed(m, &k));
        }
    }

    /// Updates every table with the packet and computes its features.
    fn update(&mut self, m: &PacketMeta, k: &Keys, ts: u64) -> Features {
        let (s, d) = (k.s, k.d);
        let len = f64::from(m.len);
        let tcp = m.is_tcp();
        let udp = m.is_udp();
        // The parser finds no ports in a non-first fragment.
        let fragment = (tcp || udp) && m.sport == 0 && m.dport == 0;
        let syn = tcp && m.tcp_flags & flags::SYN != 0 && m.tcp_flags & flags::ACK == 0;
        let synack = tcp && m.tcp_flags & (flags::SYN | flags::ACK) == (flags::SYN | flags::ACK);
        let mut rule: [Option<f64>; NRF] = [None; NRF];
        let mut hst = [0f32; HD];
        let phase = self.phase;
        // Disjoint borrows: the flow, pair and host entries stay open side by side.
        let Detector {
            cfg,
            flows,
            pairs,
            hosts,
            host_ports,
            syn_cm,
            baseline_pairs,
            hst: model,
            rules,
            anomaly_scale,
            scan_ns,
            fanout_ns,
            burst_gap_ns,
            ..
        } = self;
        let (scan_ns, fanout_ns) = (*scan_ns, *fanout_ns);

        // Flow first: its eviction releases established connections of pairs.
        let dir = k.dir;
        let (flow, created) = flows.entry_or_insert_hashed(
            k.flow_h,
            k.flow,
            ts,
            || FlowState {
                first_ns: ts,
                initiator: dir,
                ..FlowState::default()
            },
            |k, v| {
                if v.established
                    && let Some(p) = pairs.get_mut(&PairKey { lo: k.lo, hi: k.hi })
                {
                    let e = &mut p.established[usize::from(v.initiator)];
                    *e = e.saturating_sub(1);
                }
            },
        );
        flow.last_ns = ts;
        flow.pkts = flow.pkts.saturating_add(1);
        flow.size.update(ts, len, &FLOW_LAMBDAS);
        flow.bytes += u64::from(m.len);
        // The trees look at a sample of each flow's packets, at a flow whose last score
        // would alert (every few packets, see `HOT_RESCORE_EVERY`), and at a flow they
        // have not scored since the calibration began.
        let scoring = matches!(phase, Phase::Calibrate | Phase::Score);
        let hot = phase == Phase::Score
            && flow.pkts.is_multiple_of(HOT_RESCORE_EVERY)
            && flow.hst_score.is_some_and(|a| {
                let w = &rules[Rf::HstAnomaly as usize];
                (f64::from(a) - w.mean) / w.std().max(cfg.z_floor) >= f64::from(cfg.alert_threshold)
            });
        let need_hst = hst_sampled(flow.pkts) || hot || (scoring && flow.hst_score.is_none());
        let from_initiator = dir == flow.initiator;
        let mut opened = false;
        let mut closed = false;
        if tcp {
            if syn && from_initiator {
                flow.syn = true;
            } else if synack && !from_initiator {
                flow.synack = true;
            } else if from_initiator
                && flow.synack
                && !flow.established
                && !flow.finished
                && m.tcp_flags & flags::ACK != 0
                && m.tcp_flags & (flags::RST | flags::FIN) == 0
            {
                flow.established = true;
                opened = true;
            }
            if m.tcp_flags & (flags::FIN | flags::RST) != 0 {
                flow.finished = true;
                if flow.established {
                    flow.established = false;
                    closed = true;
                }
            }
        }
        let initiator = flow.initiator;
        let dur = ts.saturating_sub(flow.first_ns) as f64 * 1e-9;
        if need_hst {
            let fw1 = flow.size.win[1];
            hst[14] = flog2p1(flow.size.win[0].w);
            hst[15] = flog2p1(fw1.w);
            hst[16] = flog2p1(fw1.mean());
            hst[17] = flog2p1(fw1.std());
            // Rates, not totals: totals only grow with a flow's age.
            hst[18] = flog2p1(flow.size.win[0].mean());
            hst[19] = flog2p1(flow.bytes as f64 / dur.max(1.0));
        }
        if tcp && from_initiator && m.payload_len > 0 {
            rule[Rf::FlowByteRate as usize] = Some(log2p1(flow.bytes as f64 / dur.max(1.0)));
        }

        // Pair.
        let (pair, iat_rings, pair_created) =
            pairs.entry_with_cold(k.pair_h, k.pair, ts, PairState::default, |_, _| {});
        if pair_created {
            let pair_hash =
                u128::from(hash128(k.pair.lo, 1)) << 64 | u128::from(hash128(k.pair.hi, 2));
            pair.novel = match phase {
                Phase::Ranges => false,
                _ => !baseline_pairs.contains(pair_hash),
            };
            if phase != Phase::Score {
                baseline_pairs.insert(pair_hash);
            }
        }
        pair.last_ns = ts;
        pair.cov.update(ts, usize::from(dir), len, &PAIR_LAMBDAS);
        let di = usize::from(dir);
        pair.bytes[di] += u64::from(m.len);
        let ii = usize::from(initiator);
        if opened {
            pair.established[ii] = pair.established[ii].saturating_add(1);
        }
        if closed {
            pair.established[ii] = pair.established[ii].saturating_sub(1);
        }
        pair.burst[di].packet(&mut iat_rings[di], ts, *burst_gap_ns, cfg.beacon_min_bursts);
        // Regularity only counts on pairs the baseline did not know: the baseline has its
        // own periodic traffic (health checks, keep-alives, NTP) that is benign by definition.
        // Either direction's regularity scores every packet of the pair, so the answers and
        // the uploads of a beaconing implant score with its check-ins.
        if pair.novel {
            let reg = match (pair.burst[0].regularity, pair.burst[1].regularity) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(r) = reg {
                rule[Rf::BurstRegularity as usize] = Some(f64::from(r));
                let out = pair.bytes[di] as f64;
                let inn = pair.bytes[1 - di] as f64;
                rule[Rf::PairBytesOutIn as usize] =
                    Some(fastmath::log2_pos((out + 1.0) / (inn + 1.0)));
            }
        }
        if udp && m.sport == DNS_PORT {
            let out = pair.bytes[di] as f64;
            let inn = pair.bytes[1 - di] as f64;
            rule[Rf::DnsPairRatio as usize] = Some(fastmath::log2_pos((out + 1.0) / (inn + 64.0)));
        }
        if tcp {
            rule[Rf::OpenConnsPair as usize] = Some(log2p1(f64::from(pair.established[ii])));
        }
        let novel = pair.novel;
        if created {
            rule[Rf::NewPair as usize] = Some(if novel { 1.0 } else { 0.0 });
        }
        if need_hst {
            let c = &pair.cov;
            let pw = &c.dir[di].win;
            hst[8] = flog2p1(pw[0].w);
            hst[9] = flog2p1(pw[1].w);
            hst[10] = flog2p1(pw[2].w);
            hst[11] = flog2p1(c.magnitude(1));
            hst[12] = flog2p1(c.radius(1));
            hst[13] = c.pcc(1) as f32;
        }

        // Source host.
        let (host, hll_regs, host_created) =
            hosts.entry_with_cold(k.src_h, s, ts, HostState::default, |_, _| {});
        if host_created {
            // Hosts seen in the baseline, in the same Bloom filter as pairs (a disjoint key
            // space: the low half of a host key is a constant).
            let host_key = u128::from(hash128(s, 6)) << 64 | 0x686f_7374;
            host.known = if phase == Phase::Score {
                baseline_pairs.contains(host_key)
            } else {
                baseline_pairs.insert(host_key);
                true
            };
        }
        host.last_ns = ts;
        host.size.update(ts, len, &HOST_LAMBDAS);
        // The flow's service port: where lateral movement and scans aim.
        let service = if from_initiator { m.dport } else { m.sport };
        let admin = ADMIN_PORTS.contains(&service);
        if created && from_initiator {
            let [r_ports, r_hosts, r_admin, r_novel] = hll_regs;
            host.ports.insert_hash(
                r_ports,
                ts,
                scan_ns,
                mix64(u64::from(m.dport) << 8 | u64::from(m.proto)),
            );
            host.hosts.insert_hash(r_hosts, ts, scan_ns, hash128(d, 3));
            if admin {
                host.admin_hosts
                    .insert_hash(r_admin, ts, fanout_ns, hash128(d, 4));
                if novel {
                    host.novel_admin_hosts
                        .insert_hash(r_novel, ts, fanout_ns, hash128(d, 4));
                }
            }
        }
        if synack {
            host.synack_tx.add(ts, RATE_LAMBDA, 1.0);
        }
        if syn {
            host.syn_tx.add(ts, RATE_LAMBDA, 1.0);
            rule[Rf::SynRateFromSrc as usize] = Some(log2p1(host.syn_tx.rate(ts, RATE_LAMBDA)));
        }
        if udp && m.dport == DNS_PORT {
            host.dns_req_tx.add(ts, RATE_LAMBDA, len);
        }
        if need_hst {
            for (i, w) in host.size.win.iter().enumerate() {
                hst[i] = flog2p1(w.w);
            }
            hst[4] = flog2p1(host.size.win[3].std());
            hst[5] = flog2p1(host.size.win[2].mean());
            hst[6] = flog2p1(host.size.win[3].mean());
            hst[7] = flog2p1(host.size.win[2].std());
        }
        // A known source while scoring: one that was there in the baseline (a host first
        // seen while scoring is never known, even after it was evicted and came back).
        let known_src = phase == Phase::Score && (syn || udp) && host.known;

        // Scan and fan-out features belong to the flow's initiator, so its peers' answers
        // (RSTs to a scanner, replies to a pivot) score with it: the initiator's counts as of
        // its last packet in the flow.
        if tcp || udp {
            if from_initiator {
                flow.init_counts = [
                    host.ports.estimate(ts, scan_ns),
                    host.hosts.estimate(ts, scan_ns),
                    (log2p1(f64::from(host.admin_hosts.estimate(ts, fanout_ns)))
                        + log2p1(f64::from(host.novel_admin_hosts.estimate(ts, fanout_ns))))
                        as f32,
                ];
            }
            let [ports, hosts_n, admins] = flow.init_counts;
            rule[Rf::PortsBySrc as usize] = Some(log2p1(f64::from(ports)));
            rule[Rf::HostsBySrc as usize] = Some(log2p1(f64::from(hosts_n)));
            if admin {
                rule[Rf::AdminHostsBySrc as usize] = Some(f64::from(admins));
            }
        }

        // Destination host, only where a rule needs it.
        if syn {
            let c = syn_cm.add(ts, d, 1.0);
            let rate = f64::from(syn_cm.rate(c));
            rule[Rf::SynRateToDst as usize] = Some(log2p1(rate));
            let answered = hosts
                .get_hashed(k.dst_h, &d)
                .map_or(0.0, |h| h.synack_tx.rate(ts, RATE_LAMBDA));
            rule[Rf::HalfOpenRatio as usize] = Some(((1.0 + rate) / (1.0 + answered)).log2());
        }
        if udp && m.sport == DNS_PORT {
            let (victim, _) =
                hosts.entry_or_insert_hashed(k.dst_h, d, ts, HostState::default, |_, _| {});
            victim.last_ns = victim.last_ns.max(ts);
            victim.dns_resp_rx.add(ts, RATE_LAMBDA, len);
            let resp = victim.dns_resp_rx.rate(ts, RATE_LAMBDA);
            let req = victim.dns_req_tx.rate(ts, RATE_LAMBDA);
            rule[Rf::DnsRespRate as usize] = Some(log2p1(resp));
            rule[Rf::DnsRespReqRatio as usize] = Some(((resp + 1.0) / (req + 64.0)).log2());
        }

        // The initiator's service: rate and fan-out per (initiator host, service port).
        let (ohost, (hpk, hph)) = if from_initiator {
            (d, k.hp[0])
        } else {
            (s, k.hp[1])
        };
        let (hp, fanout_regs, _) =
            host_ports.entry_with_cold(hph, hpk, ts, HostPortState::default, |_, _| {});
        // `ts` is at least 1 (see `observe_keyed`).
        hp.last_ns = core::num::NonZeroU64::new(ts).unwrap_or(core::num::NonZeroU64::MIN);
        hp.pkts.add(ts, RATE_LAMBDA, 1.0);
        if created {
            hp.fanout
                .insert_hash(fanout_regs, ts, fanout_ns, hash128(ohost, 5));
        }
        let mut x = None;
        if need_hst {
            hst[20] = flog2p1(hp.pkts.rate(ts, RATE_LAMBDA));
            hst[21] = flog2p1(f64::from(hp.fanout.estimate(ts, fanout_ns)));
            if let Some((a, xn)) = model.process(phase, &hst) {
                flow.hst_score = Some(a as f32);
                x = Some(xn);
            }
        }
        if scoring {
            rule[Rf::HstAnomaly as usize] = flow.hst_score.map(f64::from);
        }

        let mut class_scores = None;
        if phase == Phase::Score {
            let mut cs = class_scores_of(
                rules,
                cfg.z_floor,
                &rule,
                known_src,
                *anomaly_scale,
                cfg.alert_threshold,
            );
            let (best, top) = best_class(&cs);
            if from_initiator {
                flow.carry = (top, best as u8);
            } else {
                // An answer belongs to the exchange its initiator started: it ranks with the
                // initiator's last packet (a flooded server's SYN-ACKs with the flood), but
                // below the alert threshold, since that packet already raised the alert.
                let (carried, c) = flow.carry;
                let c = usize::from(c).min(NCLASS - 1);
                let cap = CARRY_CAP * cfg.alert_threshold;
                cs[c] = cs[c].max(carried.min(cap));
            }
            if fragment {
                // A later fragment is the rest of the datagram its first fragment (which has
                // the ports) began: it takes that fragment's score.
                let (carried, c) = pair.frag_carry[di];
                let c = usize::from(c).min(NCLASS - 1);
                cs[c] = cs[c].max(carried);
            } else {
                let (best, top) = best_class(&cs);
                pair.frag_carry[di] = (top, best as u8);
            }
            class_scores = Some(cs);
        }
        Features {
            rule,
            class_scores,
            hst: x,
            answer: !from_initiator,
        }
    }
}

#[cfg(test)]
mod tests;
