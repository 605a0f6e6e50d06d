//! A seeded generator of labelled traffic: a benign mix (web, DNS, TLS, east-west RPC) and
//! six attack classes (SYN flood, port scan, DNS amplification, slowloris, beaconing with
//! exfiltration, lateral movement) at chosen rates, streamed frame by frame in time order.
//!
//! ```
//! use shadownet_host::analysis::trafficgen::{generate, AttackClass, AttackSpec, Label, Scenario};
//!
//! let s = Scenario {
//!     duration_s: 5.0,
//!     benign_pps: 200.0,
//!     attacks: vec!["port_scan:start=1,duration=2,rate=100".parse()?],
//!     ..Scenario::default()
//! };
//! let scans = generate(&s)?
//!     .filter(|f| f.label == Label::Attack(AttackClass::PortScan))
//!     .count();
//! assert!(scans > 100);
//! # Ok::<(), shadownet_host::analysis::trafficgen::TrafficGenError>(())
//! ```
//!
//! # What the traffic looks like
//!
//! Internal hosts sit in the scenario's subnet from its 10th address up: a DNS resolver, a
//! public web server, RPC services (one per eight hosts) and clients; `.1` is the gateway
//! and everything outside the subnet is reached through its MAC. Benign flows of each
//! application start with Weibull inter-arrival times of shape 0.6 (bursty, heavy-tailed);
//! their sizes are heavy-tailed too (bounded Pareto bodies, geometric request counts,
//! log-normal think times and round trips). TCP connections open with a handshake, send
//! each message in windows that double from 10 to 64 segments with an acknowledgement per
//! second segment, and close with FIN (or sometimes RST). Payloads have real wire formats:
//! DNS messages, TLS 1.3 records starting with a ClientHello, HTTP/1.1, SSH banners, SMB2
//! NEGOTIATE, RDP connection requests.
//!
//! Each source is calibrated so its frames per second average the configured rate: the
//! benign mix's shares of `benign_pps`, or an attack's `rate_pps` over its window. Frames
//! after `duration_s` are not produced, so flows running at the end are cut short.
//!
//! Determinism: every source draws from its own stream derived from the seed, so the same
//! scenario always gives byte-identical frames, and adding an attack leaves the benign
//! traffic's shapes as they were.

mod app;
mod flows;
mod labels;
pub(crate) mod packet;
mod rng;
mod scenario;
mod tcp;
#[cfg(test)]
mod tests;

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
};

pub use labels::{LABELS_HEADER, LabelsError, label_line, parse_labels};
pub use scenario::{AttackClass, AttackSpec, BenignClass, BenignMix, Scenario, parse_seconds};

use flows::{Plan, Source, Topology};
use packet::{IpFields, udp_frames};
use rng::Rng;
use tcp::TcpFlow;

/// Why a scenario cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrafficGenError {
    /// Duration not a positive number of seconds (at most 4,000,000).
    #[error("duration {0} s is not a positive number of seconds (at most 4000000)")]
    InvalidDuration(f64),
    /// The subnet does not parse or cannot hold hosts.
    #[error("subnet `{subnet}`: {reason}")]
    InvalidSubnet {
        /// As given.
        subnet: String,
        /// What is wrong.
        reason: String,
    },
    /// Fewer hosts than the roles need.
    #[error(
        "{hosts} hosts are too few: at least {min} (resolver, web server, RPC service, client)"
    )]
    TooFewHosts {
        /// As given.
        hosts: u32,
        /// The least allowed.
        min: u32,
    },
    /// More hosts than fit the subnet from its 10th address.
    #[error("{hosts} hosts do not fit {subnet} (hosts start at its 10th address): at most {max}")]
    TooManyHosts {
        /// As given.
        hosts: u32,
        /// The subnet.
        subnet: String,
        /// The most that fit.
        max: u64,
    },
    /// A rate is negative, zero where it must not be, or not finite.
    #[error("{what} = {value} is not a valid rate (frames per second, at most 10000000)")]
    InvalidRate {
        /// Which rate.
        what: String,
        /// As given.
        value: f64,
    },
    /// The benign mix's shares.
    #[error("benign mix: {0}")]
    InvalidMix(String),
    /// VLAN id outside 1-4094.
    #[error("VLAN id {0} is outside 1-4094")]
    InvalidVlan(u16),
    /// An attack of the scenario is wrong.
    #[error("attack {index} ({class}): {reason}")]
    InvalidAttack {
        /// Its position in the scenario's list.
        index: usize,
        /// Its class.
        class: AttackClass,
        /// What is wrong.
        reason: String,
    },
    /// An attack class name not known.
    #[error(
        "unknown attack class `{0}` (syn_flood, port_scan, dns_amplification, slowloris, beaconing, lateral_movement)"
    )]
    UnknownAttackClass(String),
    /// A command-line attack does not parse.
    #[error("attack `{spec}`: {reason}")]
    BadAttackSpec {
        /// As given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A scenario file does not parse.
    #[error("scenario: {0}")]
    Toml(String),
}

/// Ground truth of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// Normal traffic.
    Benign,
    /// Part of an attack of this class (the attacker's frames and the replies they cause).
    Attack(AttackClass),
}

impl Label {
    /// `benign` or the attack class's name.
    pub fn name(&self) -> &'static str {
        match self {
            Label::Benign => "benign",
            Label::Attack(c) => c.name(),
        }
    }
}

/// A generated frame and its ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledFrame {
    /// Nanoseconds since the start of the capture.
    pub ts_ns: u64,
    /// Ethernet frame (no FCS).
    pub frame: Vec<u8>,
    /// The ground truth.
    pub label: Label,
    /// The flow (connection, DNS transaction, probe) the frame belongs to; numbered from 1
    /// in the order flows start.
    pub flow: u32,
    /// The application of a benign frame.
    pub benign_class: Option<BenignClass>,
}

/// Generates a scenario's frames in time order, one at a time (memory grows with the
/// flows active at once, not with the capture).
pub fn generate(s: &Scenario) -> Result<Generator, TrafficGenError> {
    Generator::new(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Source(usize),
    Flow(u32),
}

#[derive(Debug)]
struct Active {
    label: Label,
    benign_class: Option<BenignClass>,
    queue: VecDeque<(u64, Vec<u8>)>,
    tcp: Option<TcpFlow>,
    rng: Rng,
    last_ns: u64,
}

/// The iterator [`generate`] returns.
#[derive(Debug)]
pub struct Generator {
    topo: Topology,
    sources: Vec<(Source, Option<BenignClass>)>,
    heap: BinaryHeap<Reverse<(u64, u64, Slot)>>,
    flows: HashMap<u32, Active>,
    next_flow: u32,
    seq: u64,
    end_ns: u64,
    seed: u64,
}

impl Generator {
    /// Validates the scenario and sets up its sources.
    pub fn new(s: &Scenario) -> Result<Generator, TrafficGenError> {
        let subnet = s.checked()?;
        let topo = Topology::new(s, subnet);
        let mut sources = Vec::new();
        let shares = s.mix.normalised();
        for (class, share) in BenignClass::ALL.into_iter().zip(shares) {
            sources.push((Source::benign(s, class, share, &topo), Some(class)));
        }
        for (i, a) in s.attacks.iter().enumerate() {
            sources.push((Source::attack(s, i, a, &topo)?, None));
        }
        let end_ns = (s.duration_s * 1e9) as u64;
        let mut g = Generator {
            topo,
            sources,
            heap: BinaryHeap::new(),
            flows: HashMap::new(),
            next_flow: 1,
            seq: 0,
            end_ns,
            seed: s.seed,
        };
        for i in 0..g.sources.len() {
            let t = g.sources[i].0.next_ns;
            if t <= end_ns {
                g.push(t, Slot::Source(i));
            }
        }
        Ok(g)
    }

    fn push(&mut self, ts: u64, slot: Slot) {
        self.seq += 1;
        self.heap.push(Reverse((ts, self.seq, slot)));
    }

    fn start(&mut self, now: u64, source: usize, delay: u64, plan: Plan) {
        let id = self.next_flow;
        self.next_flow = self.next_flow.wrapping_add(1);
        let (label, benign_class) = (self.sources[source].0.label, self.sources[source].1);
        let mut rng = Rng::new(self.seed, 0x1_0000_0000 | u64::from(id));
        let start = now.saturating_add(delay);
        let mut queue = VecDeque::new();
        let tcp = match plan {
            Plan::Tcp(p) => {
                let mut f = TcpFlow::new(p, start, self.topo.vlan, &mut rng);
                f.refill(&mut rng, &mut queue);
                Some(f)
            }
            Plan::Udp(datagrams) => {
                for d in datagrams {
                    let ip = IpFields {
                        ttl: d.ttl,
                        ident: rng.next_u32() as u16,
                    };
                    for f in udp_frames(&d.src, &d.dst, self.topo.vlan, ip, &d.payload) {
                        queue.push_back((start + d.at_ns, f));
                    }
                }
                None
            }
        };
        let Some(&(first, _)) = queue.front() else {
            return;
        };
        self.flows.insert(
            id,
            Active {
                label,
                benign_class,
                queue,
                tcp,
                rng,
                last_ns: start,
            },
        );
        self.push(first.max(start), Slot::Flow(id));
    }
}

impl Iterator for Generator {
    type Item = LabelledFrame;

    fn next(&mut self) -> Option<LabelledFrame> {
        loop {
            let Reverse((ts, _, slot)) = self.heap.pop()?;
            if ts > self.end_ns {
                // Everything else is later still.
                self.heap.clear();
                self.flows.clear();
                return None;
            }
            match slot {
                Slot::Source(i) => {
                    let (spawned, next) = self.sources[i].0.arrive(ts, &self.topo);
                    for (delay, plan) in spawned {
                        self.start(ts, i, delay, plan);
                    }
                    if let Some(n) = next.filter(|&n| n <= self.end_ns) {
                        self.push(n, Slot::Source(i));
                    }
                }
                Slot::Flow(id) => {
                    let Some(flow) = self.flows.get_mut(&id) else {
                        continue;
                    };
                    let Some((_, frame)) = flow.queue.pop_front() else {
                        self.flows.remove(&id);
                        continue;
                    };
                    let out = LabelledFrame {
                        ts_ns: ts,
                        frame,
                        label: flow.label,
                        flow: id,
                        benign_class: flow.benign_class,
                    };
                    flow.last_ns = ts;
                    if flow.queue.is_empty()
                        && let Some(tcp) = flow.tcp.as_mut()
                    {
                        tcp.refill(&mut flow.rng, &mut flow.queue);
                    }
                    match flow.queue.front() {
                        // A flow's frames never go back in time, even by rounding.
                        Some(&(t, _)) => {
                            let t = t.max(flow.last_ns);
                            self.push(t, Slot::Flow(id));
                        }
                        None => {
                            self.flows.remove(&id);
                        }
                    }
                    return Some(out);
                }
            }
        }
    }
}
