//! What to generate: the scenario, its attacks, parsing from the command line and TOML,
//! validation and the `mixed` preset.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};

use super::TrafficGenError;

/// A traffic scenario. Everything generated follows from it: the same scenario gives the
/// same frames, byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random choice.
    pub seed: u64,
    /// Length of the capture, seconds.
    pub duration_s: f64,
    /// The overlay subnet of the internal hosts, `A.B.C.D/LEN` (prefix length 8 to 29).
    pub subnet: String,
    /// Internal hosts (at least 4): a DNS resolver, a public web server, RPC services and
    /// clients, in that order from the 10th address of the subnet.
    pub hosts: u32,
    /// Benign frames per second, on average (bursty around it).
    pub benign_pps: f64,
    /// Attacks, each in its own time window.
    #[serde(default)]
    pub attacks: Vec<AttackSpec>,
    /// Shares of benign frames per application.
    #[serde(default)]
    pub mix: BenignMix,
    /// 802.1Q VLAN id on every frame, if any.
    #[serde(default)]
    pub vlan: Option<u16>,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            seed: 1,
            duration_s: 60.0,
            subnet: "192.168.10.0/24".to_string(),
            hosts: 32,
            benign_pps: 1000.0,
            attacks: Vec::new(),
            mix: BenignMix::default(),
            vlan: None,
        }
    }
}

/// Shares of the benign frames per application; normalised, so only ratios matter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenignMix {
    /// HTTP/1.1 on port 80, to external sites and from external clients to the web server.
    pub web: f64,
    /// DNS queries to the internal resolver and its recursion to upstream servers.
    pub dns: f64,
    /// TLS on port 443 (ClientHello, server flight, application-data records).
    pub tls: f64,
    /// East-west request/response RPC (HTTP/1.1 JSON on port 8080) between internal hosts.
    pub rpc: f64,
}

impl Default for BenignMix {
    fn default() -> BenignMix {
        BenignMix {
            web: 0.25,
            dns: 0.15,
            tls: 0.40,
            rpc: 0.20,
        }
    }
}

impl BenignMix {
    /// The shares in [`BenignClass::ALL`] order, summing to 1.
    pub fn normalised(&self) -> [f64; 4] {
        let v = [self.web, self.dns, self.tls, self.rpc];
        let sum: f64 = v.iter().sum();
        v.map(|x| x / sum)
    }
}

/// Benign applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenignClass {
    /// HTTP.
    Web,
    /// DNS.
    Dns,
    /// TLS.
    Tls,
    /// East-west RPC.
    Rpc,
}

impl BenignClass {
    /// Every class.
    pub const ALL: [BenignClass; 4] = [
        BenignClass::Web,
        BenignClass::Dns,
        BenignClass::Tls,
        BenignClass::Rpc,
    ];

    /// Name in files (`web`, `dns`, `tls`, `rpc`).
    pub fn name(self) -> &'static str {
        match self {
            BenignClass::Web => "web",
            BenignClass::Dns => "dns",
            BenignClass::Tls => "tls",
            BenignClass::Rpc => "rpc",
        }
    }
}

/// Attack classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackClass {
    /// SYNs from spoofed sources to a server port; the server's SYN-ACKs go unanswered.
    SynFlood,
    /// One source probing many ports of a host with SYNs (RST-ACK from closed ports).
    PortScan,
    /// Large DNS responses from many reflectors to a victim that never asked.
    DnsAmplification,
    /// Many connections to a web server, each sending a header line now and then.
    Slowloris,
    /// Periodic small TLS connections from an internal host to one external host, and
    /// now and then a large upload (exfiltration).
    Beaconing,
    /// One internal host connecting to many internal hosts on SSH, SMB, RDP and WinRM.
    LateralMovement,
}

impl AttackClass {
    /// Every class.
    pub const ALL: [AttackClass; 6] = [
        AttackClass::SynFlood,
        AttackClass::PortScan,
        AttackClass::DnsAmplification,
        AttackClass::Slowloris,
        AttackClass::Beaconing,
        AttackClass::LateralMovement,
    ];

    /// Name in files and on the command line (`syn_flood`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AttackClass::SynFlood => "syn_flood",
            AttackClass::PortScan => "port_scan",
            AttackClass::DnsAmplification => "dns_amplification",
            AttackClass::Slowloris => "slowloris",
            AttackClass::Beaconing => "beaconing",
            AttackClass::LateralMovement => "lateral_movement",
        }
    }

    /// The rate the `mixed` preset and an attack given without `rate=` use, frames/s.
    pub fn default_rate(self) -> f64 {
        match self {
            AttackClass::SynFlood => 800.0,
            AttackClass::PortScan => 200.0,
            AttackClass::DnsAmplification => 400.0,
            AttackClass::Slowloris => 40.0,
            AttackClass::Beaconing => 10.0,
            AttackClass::LateralMovement => 60.0,
        }
    }
}

impl fmt::Display for AttackClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttackClass {
    type Err = TrafficGenError;

    fn from_str(s: &str) -> Result<AttackClass, TrafficGenError> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        AttackClass::ALL
            .into_iter()
            .find(|c| c.name() == norm)
            .ok_or_else(|| TrafficGenError::UnknownAttackClass(s.to_string()))
    }
}

/// One attack: its class, its time window and rate, and optionally who attacks whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    /// The class.
    pub class: AttackClass,
    /// Start, seconds from the beginning of the capture.
    pub start_s: f64,
    /// Length of the attack, seconds.
    pub duration_s: f64,
    /// Attack frames per second (both directions: the attacker's and the replies it
    /// causes), on average over the window.
    pub rate_pps: f64,
    /// The attacking address. Default per class: spoofed random sources (SYN flood), an
    /// external scanner, many external reflectors (DNS amplification), an external host
    /// (slowloris), or the last internal host (beaconing, lateral movement; these must be
    /// inside the subnet).
    #[serde(default)]
    pub attacker: Option<String>,
    /// The target. Default: the public web server (SYN flood, port scan, slowloris, DNS
    /// amplification's victim), an external C2 host (beaconing), every other internal host
    /// (lateral movement).
    #[serde(default)]
    pub target: Option<String>,
}

impl FromStr for AttackSpec {
    type Err = TrafficGenError;

    /// `CLASS[:start=S,duration=S,rate=PPS,attacker=IP,target=IP]`; omitted keys default to
    /// start 10 s, duration 20 s and the class's default rate.
    fn from_str(s: &str) -> Result<AttackSpec, TrafficGenError> {
        let bad = |reason: String| TrafficGenError::BadAttackSpec {
            spec: s.to_string(),
            reason,
        };
        let (class, rest) = match s.split_once(':') {
            Some((c, r)) => (c, r),
            None => (s, ""),
        };
        let class: AttackClass = class.parse()?;
        let mut spec = AttackSpec {
            class,
            start_s: 10.0,
            duration_s: 20.0,
            rate_pps: class.default_rate(),
            attacker: None,
            target: None,
        };
        for kv in rest.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("`{kv}` is not KEY=VALUE")))?;
            let (k, v) = (k.trim(), v.trim());
            let num = || -> Result<f64, TrafficGenError> {
                parse_seconds(v).map_err(|e| bad(format!("{k}: {e}")))
            };
            match k {
                "start" => spec.start_s = num()?,
                "duration" => spec.duration_s = num()?,
                "rate" => {
                    spec.rate_pps = v
                        .parse()
                        .map_err(|_| bad(format!("rate: `{v}` is not a number")))?
                }
                "attacker" => spec.attacker = Some(v.to_string()),
                "target" => spec.target = Some(v.to_string()),
                other => {
                    return Err(bad(format!(
                        "unknown key `{other}` (start, duration, rate, attacker, target)"
                    )));
                }
            }
        }
        Ok(spec)
    }
}

/// A duration: `90`, `90s`, `1500ms`, `2m`, `1h`.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (90, 90s, 1500ms, 2m, 1h)"))?;
    let k = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Ok(x * k)
}

/// The subnet, parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subnet {
    pub(crate) network: u32,
    pub(crate) len: u8,
}

impl Subnet {
    pub(crate) fn size(&self) -> u64 {
        1u64 << (32 - self.len)
    }

    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.len);
        u32::from(ip) & mask == self.network
    }

    pub(crate) fn addr(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + offset)
    }
}

fn parse_subnet(s: &str) -> Result<Subnet, TrafficGenError> {
    let bad = |reason: &str| TrafficGenError::InvalidSubnet {
        subnet: s.to_string(),
        reason: reason.to_string(),
    };
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| bad("expected A.B.C.D/LEN"))?;
    let ip: Ipv4Addr = ip.trim().parse().map_err(|_| bad("not an IPv4 address"))?;
    let len: u8 = len
        .trim()
        .parse()
        .map_err(|_| bad("prefix length is not a number"))?;
    if !(8..=29).contains(&len) {
        return Err(bad("prefix length must be 8 to 29"));
    }
    let mask = u32::MAX << (32 - len);
    if u32::from(ip) & !mask != 0 {
        return Err(bad("host bits are set"));
    }
    Ok(Subnet {
        network: u32::from(ip),
        len,
    })
}

/// First host offset inside the subnet; .1 is the gateway.
pub(crate) const FIRST_HOST: u32 = 10;
/// Fewest hosts the roles need: resolver, web server, an RPC service, a client.
pub(crate) const MIN_HOSTS: u32 = 4;
const MAX_RATE: f64 = 10_000_000.0;

fn check_rate(what: &str, value: f64, allow_zero: bool) -> Result<(), TrafficGenError> {
    let ok =
        value.is_finite() && value <= MAX_RATE && (value > 0.0 || (allow_zero && value == 0.0));
    if ok {
        Ok(())
    } else {
        Err(TrafficGenError::InvalidRate {
            what: what.to_string(),
            value,
        })
    }
}

impl Scenario {
    /// Reads a scenario from TOML (the fields of [`Scenario`]; `[[attacks]]` tables).
    pub fn from_toml(text: &str) -> Result<Scenario, TrafficGenError> {
        toml::from_str(text).map_err(|e| TrafficGenError::Toml(e.to_string()))
    }

    /// The `mixed` preset: all six attacks at their default rates, staggered over the
    /// capture (beaconing runs through most of it), on 1,000 benign frames/s.
    pub fn preset_mixed(seed: u64, duration_s: f64) -> Scenario {
        let d = duration_s;
        let at = |class: AttackClass, start: f64, len: f64| AttackSpec {
            class,
            start_s: start * d,
            duration_s: len * d,
            rate_pps: class.default_rate(),
            attacker: None,
            target: None,
        };
        Scenario {
            seed,
            duration_s,
            attacks: vec![
                at(AttackClass::PortScan, 0.05, 0.12),
                at(AttackClass::SynFlood, 0.20, 0.10),
                at(AttackClass::DnsAmplification, 0.33, 0.10),
                at(AttackClass::Slowloris, 0.45, 0.25),
                at(AttackClass::Beaconing, 0.05, 0.90),
                at(AttackClass::LateralMovement, 0.75, 0.15),
            ],
            ..Scenario::default()
        }
    }

    /// Checks everything; the generator runs only on a scenario that passes.
    pub fn validate(&self) -> Result<(), TrafficGenError> {
        self.checked().map(|_| ())
    }

    pub(crate) fn checked(&self) -> Result<Subnet, TrafficGenError> {
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 4.0e6) {
            return Err(TrafficGenError::InvalidDuration(self.duration_s));
        }
        let subnet = parse_subnet(&self.subnet)?;
        if self.hosts < MIN_HOSTS {
            return Err(TrafficGenError::TooFewHosts {
                hosts: self.hosts,
                min: MIN_HOSTS,
            });
        }
        // Hosts from .10 up, the broadcast address left out.
        let max = subnet.size().saturating_sub(u64::from(FIRST_HOST) + 1);
        if u64::from(self.hosts) > max {
            return Err(TrafficGenError::TooManyHosts {
                hosts: self.hosts,
                subnet: self.subnet.clone(),
                max,
            });
        }
        check_rate("benign_pps", self.benign_pps, true)?;
        let m = self.mix;
        let shares = [m.web, m.dns, m.tls, m.rpc];
        if shares.iter().any(|x| !x.is_finite() || *x < 0.0) || shares.iter().sum::<f64>() <= 0.0 {
            return Err(TrafficGenError::InvalidMix(format!(
                "shares must be non-negative with a positive sum, got web={} dns={} tls={} rpc={}",
                m.web, m.dns, m.tls, m.rpc
            )));
        }
        if let Some(v) = self.vlan
            && !(1..=4094).contains(&v)
        {
            return Err(TrafficGenError::InvalidVlan(v));
        }
        for (i, a) in self.attacks.iter().enumerate() {
            let bad = |reason: String| TrafficGenError::InvalidAttack {
                index: i,
                class: a.class,
                reason,
            };
            if !(a.start_s.is_finite() && a.start_s >= 0.0 && a.start_s < self.duration_s) {
                return Err(bad(format!(
                    "start {} s is outside the capture (0 to {} s)",
                    a.start_s, self.duration_s
                )));
            }
            if !(a.duration_s.is_finite() && a.duration_s > 0.0) {
                return Err(bad(format!("duration {} s must be positive", a.duration_s)));
            }
            check_rate(
                &format!("attack {i} ({}) rate_pps", a.class),
                a.rate_pps,
                false,
            )?;
            let attacker = parse_addr(i, a, "attacker", a.attacker.as_deref())?;
            let target = parse_addr(i, a, "target", a.target.as_deref())?;
            let outside = |ip: Option<Ipv4Addr>| ip.is_none_or(|ip| !subnet.contains(ip));
            let host = |ip: Option<Ipv4Addr>| {
                ip.is_none_or(|ip| {
                    let off = u32::from(ip).wrapping_sub(subnet.network);
                    (FIRST_HOST..FIRST_HOST + self.hosts).contains(&off)
                })
            };
            match a.class {
                AttackClass::Beaconing | AttackClass::LateralMovement if !host(attacker) => {
                    return Err(bad(format!(
                        "the attacker must be one of the internal hosts ({} to {})",
                        subnet.addr(FIRST_HOST),
                        subnet.addr(FIRST_HOST + self.hosts - 1)
                    )));
                }
                AttackClass::Beaconing if !outside(target) => {
                    return Err(bad("the beacon's target must be outside the subnet".into()));
                }
                AttackClass::LateralMovement if !host(target) => {
                    return Err(bad("the target must be one of the internal hosts".into()));
                }
                AttackClass::SynFlood
                | AttackClass::PortScan
                | AttackClass::DnsAmplification
                | AttackClass::Slowloris
                    if !host(target) =>
                {
                    return Err(bad("the target must be one of the internal hosts".into()));
                }
                AttackClass::SynFlood
                | AttackClass::PortScan
                | AttackClass::DnsAmplification
                | AttackClass::Slowloris
                    if !outside(attacker) =>
                {
                    return Err(bad("the attacker must be outside the subnet".into()));
                }
                _ => {}
            }
        }
        Ok(subnet)
    }
}

pub(crate) fn parse_addr(
    index: usize,
    a: &AttackSpec,
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<Ipv4Addr>, TrafficGenError> {
    value
        .map(|v| {
            v.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| TrafficGenError::InvalidAttack {
                    index,
                    class: a.class,
                    reason: format!("{field} `{v}` is not an IPv4 address"),
                })
        })
        .transpose()
}
