//! The network the traffic runs in, and the sources that start flows: one per benign
//! application and one per attack, each drawing its flows' shapes from its own random
//! stream.

use std::net::Ipv4Addr;

use super::app::{self, Message, RData, qtype};
use super::packet::{Endpoint, udp_frame_count};
use super::rng::{Rng, Zipf, splitmix64};
use super::scenario::{
    AttackClass, AttackSpec, BenignClass, FIRST_HOST, Scenario, Subnet, parse_addr,
};
use super::tcp::{Close, Dir, Open, Step, TcpPlan, Trickle};
use super::{Label, TrafficGenError};

const MS: f64 = 1e6;
const SECOND: f64 = 1e9;

/// Internal hosts, the gateway to the outside, and the outside world they talk to.
#[derive(Debug)]
pub(crate) struct Topology {
    hosts: Vec<Ipv4Addr>,
    gateway_mac: [u8; 6],
    subnet: Subnet,
    sites: Vec<(Ipv4Addr, String)>,
    site_pop: Zipf,
    names: Vec<String>,
    name_pop: Zipf,
    upstream: [Ipv4Addr; 4],
    pub(crate) vlan: Option<u16>,
}

const RESOLVER: usize = 0;
const WEB: usize = 1;

impl Topology {
    pub(crate) fn new(s: &Scenario, subnet: Subnet) -> Topology {
        let mut rng = Rng::new(s.seed, 0x70_70);
        let hosts = (0..s.hosts).map(|i| subnet.addr(FIRST_HOST + i)).collect();
        let sites = (0..400)
            .map(|_| (public_ip(&mut rng), app::domain_name(&mut rng)))
            .collect();
        let names = (0..1000).map(|_| app::domain_name(&mut rng)).collect();
        Topology {
            hosts,
            gateway_mac: [0x02, 0x5e, 0x10, 0x00, 0x00, 0x01],
            subnet,
            sites,
            site_pop: Zipf::new(400, 1.0),
            names,
            name_pop: Zipf::new(1000, 0.9),
            upstream: [
                Ipv4Addr::new(8, 8, 8, 8),
                Ipv4Addr::new(1, 1, 1, 1),
                Ipv4Addr::new(9, 9, 9, 9),
                Ipv4Addr::new(208, 67, 222, 222),
            ],
            vlan: s.vlan,
        }
    }

    fn n_rpc(&self) -> usize {
        (self.hosts.len() / 8).max(1)
    }

    fn rpc_hosts(&self) -> std::ops::Range<usize> {
        2..2 + self.n_rpc()
    }

    /// Hosts that act as clients (every host but the resolver and the web server when
    /// there are few).
    fn client(&self, rng: &mut Rng) -> usize {
        let first = 2 + self.n_rpc();
        if first < self.hosts.len() {
            first + rng.index(self.hosts.len() - first)
        } else {
            2 + rng.index(self.hosts.len() - 2)
        }
    }

    fn index_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.hosts.iter().position(|&h| h == ip)
    }

    /// Where `ip` is on the wire: internal hosts have their own MAC; everything outside
    /// is behind the gateway.
    fn ep(&self, ip: Ipv4Addr, port: u16) -> Endpoint {
        let mac = if self.subnet.contains(ip) {
            let o = ip.octets();
            [0x02, 0x5e, o[0], o[1], o[2], o[3]]
        } else {
            self.gateway_mac
        };
        Endpoint { mac, ip, port }
    }

    fn host(&self, i: usize, port: u16) -> Endpoint {
        self.ep(self.hosts[i], port)
    }

    fn site(&self, rng: &mut Rng) -> &(Ipv4Addr, String) {
        &self.sites[self.site_pop.sample(rng)]
    }
}

/// A public-looking unicast address (first octets from ranges big providers announce;
/// never private, loopback, link-local, CGN or multicast).
pub(crate) fn public_ip(rng: &mut Rng) -> Ipv4Addr {
    const FIRST: [u8; 24] = [
        13, 20, 23, 31, 34, 35, 40, 45, 52, 54, 62, 77, 81, 91, 104, 130, 142, 151, 157, 185, 199,
        203, 212, 216,
    ];
    Ipv4Addr::new(
        FIRST[rng.index(FIRST.len())],
        rng.range(0, 255) as u8,
        rng.range(0, 255) as u8,
        rng.range(1, 254) as u8,
    )
}

fn ephemeral(rng: &mut Rng) -> u16 {
    rng.range(32768, 60999) as u16
}

fn external_rtt(rng: &mut Rng) -> u64 {
    rng.lognormal(30.0 * MS, 0.6).clamp(2.0 * MS, 400.0 * MS) as u64
}

fn internal_rtt(rng: &mut Rng) -> u64 {
    rng.lognormal(0.25 * MS, 0.4).clamp(0.05 * MS, 5.0 * MS) as u64
}

fn think(rng: &mut Rng, median_ms: f64, sigma: f64, max_ms: f64) -> u64 {
    rng.lognormal(median_ms * MS, sigma).min(max_ms * MS) as u64
}

/// Initial TTLs as different operating systems set them, less a few hops.
fn ttl(rng: &mut Rng, external: bool) -> u8 {
    let base: u8 = [64, 64, 128, 255][rng.index(4)];
    if external {
        base - rng.range(6, 20) as u8
    } else {
        base
    }
}

const WINDOWS: [u16; 5] = [64240, 65535, 29200, 42340, 8192];

fn tcp_plan(
    rng: &mut Rng,
    client: Endpoint,
    server: Endpoint,
    external: bool,
    script: Vec<Step>,
) -> TcpPlan {
    let (rtt_ns, rate_bps) = if external {
        (external_rtt(rng), rng.lognormal(40e6, 0.8).clamp(1e6, 1e9))
    } else {
        (
            internal_rtt(rng),
            rng.lognormal(3e9, 0.5).clamp(1e8, 2.5e10),
        )
    };
    TcpPlan {
        client,
        server,
        open: Open::Full,
        close: if rng.chance(0.9) {
            Close::Fin
        } else {
            Close::Rst
        },
        script,
        trickle: None,
        rtt_ns,
        rate_bps,
        ttl: [ttl(rng, external), ttl(rng, external)],
        window: [WINDOWS[rng.index(5)], WINDOWS[rng.index(5)]],
    }
}

/// A UDP datagram of a flow, `at_ns` after the flow starts.
#[derive(Debug, Clone)]
pub(crate) struct Datagram {
    pub(crate) at_ns: u64,
    pub(crate) src: Endpoint,
    pub(crate) dst: Endpoint,
    pub(crate) ttl: u8,
    pub(crate) payload: Vec<u8>,
}

/// A flow decided but not yet started.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    Tcp(TcpPlan),
    Udp(Vec<Datagram>),
}

impl Plan {
    pub(crate) fn frames(&self) -> usize {
        match self {
            Plan::Tcp(p) => p.frames(),
            Plan::Udp(d) => d.iter().map(|d| udp_frame_count(d.payload.len())).sum(),
        }
    }
}

/// How a source's flows arrive.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    /// Weibull inter-arrival times (shape below 1: bursty, heavy-tailed).
    Weibull(f64),
    Exponential,
    /// Fixed period with a relative jitter.
    Periodic(f64),
}

#[derive(Debug, Clone)]
enum Kind {
    Benign(BenignClass),
    SynFlood {
        target: Ipv4Addr,
        attacker: Option<Ipv4Addr>,
        port: u16,
    },
    PortScan {
        attacker: Ipv4Addr,
        target: Ipv4Addr,
        open: Vec<u16>,
        sport: u16,
        k: u32,
    },
    DnsAmp {
        victim: Ipv4Addr,
        reflectors: Vec<Ipv4Addr>,
    },
    Slowloris {
        attacker: Ipv4Addr,
        target: Ipv4Addr,
        remaining: u32,
        until_ns: u64,
    },
    Beacon {
        host: usize,
        c2: Ipv4Addr,
        sni: String,
    },
    Lateral {
        attacker: usize,
        targets: Vec<usize>,
        k: u32,
    },
}

/// Starts flows of one kind at its arrival times.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    kind: Kind,
    pub(crate) label: Label,
    rng: Rng,
    arrival: Arrival,
    mean_gap_ns: f64,
    pub(crate) next_ns: u64,
    end_ns: u64,
}

/// Flows one arrival starts, each `delay` after the arrival.
pub(crate) type Spawned = Vec<(u64, Plan)>;

const SLOWLORIS_INTERVAL_S: f64 = 10.0;
const LATERAL_PORTS: [u16; 4] = [22, 445, 3389, 5985];
const COMMON_PORTS: [u16; 30] = [
    80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111, 995, 993,
    5900, 1025, 587, 8888, 199, 1720, 465, 548, 113, 81, 6001,
];

impl Source {
    pub(crate) fn benign(s: &Scenario, class: BenignClass, share: f64, topo: &Topology) -> Source {
        let stream = 0x100 + class as u64;
        let mut src = Source {
            kind: Kind::Benign(class),
            label: Label::Benign,
            rng: Rng::new(s.seed, stream),
            arrival: Arrival::Weibull(0.6),
            mean_gap_ns: f64::INFINITY,
            next_ns: 0,
            end_ns: (s.duration_s * SECOND) as u64,
        };
        let pps = s.benign_pps * share;
        src.calibrate(s.seed, stream, pps, topo);
        src.next_ns = src.first_gap();
        src
    }

    pub(crate) fn attack(
        s: &Scenario,
        index: usize,
        a: &AttackSpec,
        topo: &Topology,
    ) -> Result<Source, TrafficGenError> {
        let stream = 0x1000 + index as u64;
        let mut rng = Rng::new(s.seed, stream);
        let attacker = parse_addr(index, a, "attacker", a.attacker.as_deref())?;
        let target = parse_addr(index, a, "target", a.target.as_deref())?;
        let web = topo.hosts[WEB];
        let last = topo.hosts.len() - 1;
        let start_ns = (a.start_s * SECOND) as u64;
        let end_ns = ((a.start_s + a.duration_s) * SECOND) as u64;
        let (kind, arrival) = match a.class {
            AttackClass::SynFlood => (
                Kind::SynFlood {
                    target: target.unwrap_or(web),
                    attacker,
                    port: if rng.chance(0.5) { 80 } else { 443 },
                },
                Arrival::Exponential,
            ),
            AttackClass::PortScan => {
                let target = target.unwrap_or(web);
                let open = match topo.index_of(target) {
                    Some(RESOLVER) => vec![22, 53],
                    Some(WEB) => vec![22, 80, 443],
                    Some(i) if topo.rpc_hosts().contains(&i) => vec![22, 8080],
                    _ => vec![22],
                };
                (
                    Kind::PortScan {
                        attacker: attacker.unwrap_or(Ipv4Addr::new(198, 51, 100, 23)),
                        target,
                        open,
                        sport: ephemeral(&mut rng),
                        k: 0,
                    },
                    Arrival::Exponential,
                )
            }
            AttackClass::DnsAmplification => {
                let reflectors = match attacker {
                    Some(r) => vec![r],
                    None => (0..300).map(|_| public_ip(&mut rng)).collect(),
                };
                (
                    Kind::DnsAmp {
                        victim: target.unwrap_or(web),
                        reflectors,
                    },
                    Arrival::Exponential,
                )
            }
            AttackClass::Slowloris => {
                let dur = a.duration_s;
                let ramp = (dur / 5.0).min(5.0);
                let sends = ((dur - ramp / 2.0) / SLOWLORIS_INTERVAL_S).floor().max(0.0);
                let per_conn = 3.0 + 2.0 + 2.0 * sends + 1.0;
                let conns = (a.rate_pps * dur / per_conn).ceil().max(1.0);
                let mut src = Source {
                    kind: Kind::Slowloris {
                        attacker: attacker.unwrap_or(Ipv4Addr::new(198, 51, 100, 77)),
                        target: target.unwrap_or(web),
                        remaining: conns as u32,
                        until_ns: end_ns,
                    },
                    label: Label::Attack(a.class),
                    rng,
                    arrival: Arrival::Exponential,
                    mean_gap_ns: ramp * SECOND / conns,
                    next_ns: start_ns,
                    end_ns,
                };
                src.next_ns = start_ns + src.first_gap();
                return Ok(src);
            }
            AttackClass::Beaconing => {
                let host = attacker.and_then(|ip| topo.index_of(ip)).unwrap_or(last);
                let sni = format!(
                    "update.{}",
                    app::domain_name(&mut rng)
                        .split_once('.')
                        .map_or("cdn.net", |(_, d)| d)
                );
                (
                    Kind::Beacon {
                        host,
                        c2: target.unwrap_or(Ipv4Addr::new(203, 0, 113, 50)),
                        sni,
                    },
                    Arrival::Periodic(0.02),
                )
            }
            AttackClass::LateralMovement => {
                let me = attacker.and_then(|ip| topo.index_of(ip)).unwrap_or(last);
                let mut targets: Vec<usize> = match target.and_then(|t| topo.index_of(t)) {
                    Some(t) => vec![t],
                    None => (0..topo.hosts.len()).filter(|&i| i != me).collect(),
                };
                // A sweep in an order of its own, as tools randomise it.
                for i in (1..targets.len()).rev() {
                    let j = rng.index(i + 1);
                    targets.swap(i, j);
                }
                (
                    Kind::Lateral {
                        attacker: me,
                        targets,
                        k: 0,
                    },
                    Arrival::Exponential,
                )
            }
        };
        let mut src = Source {
            kind,
            label: Label::Attack(a.class),
            rng,
            arrival,
            mean_gap_ns: f64::INFINITY,
            next_ns: start_ns,
            end_ns,
        };
        src.calibrate(s.seed, stream, a.rate_pps, topo);
        src.next_ns = match arrival {
            Arrival::Periodic(_) => start_ns + (src.rng.f64() * src.mean_gap_ns.min(SECOND)) as u64,
            _ => start_ns + src.first_gap(),
        };
        Ok(src)
    }

    /// Sets the mean gap between arrivals so the source makes `pps` frames per second on
    /// average, from the mean frame count of flows sampled on a separate stream.
    fn calibrate(&mut self, seed: u64, stream: u64, pps: f64, topo: &Topology) {
        if pps <= 0.0 {
            self.mean_gap_ns = f64::INFINITY;
            return;
        }
        let mut probe = self.clone();
        probe.rng = Rng::new(seed, stream ^ 0xca1_1b4a7e);
        const SAMPLES: usize = 3000;
        let frames: usize = (0..SAMPLES)
            .map(|_| {
                probe
                    .spawn_plans(topo)
                    .iter()
                    .map(|(_, p)| p.frames())
                    .sum::<usize>()
            })
            .sum();
        let mean = (frames as f64 / SAMPLES as f64).max(1.0);
        self.mean_gap_ns = mean / pps * SECOND;
    }

    fn gap(&mut self) -> f64 {
        match self.arrival {
            Arrival::Weibull(k) => self.rng.weibull(k, self.mean_gap_ns),
            Arrival::Exponential => self.rng.exp(self.mean_gap_ns),
            Arrival::Periodic(j) => self.mean_gap_ns * (1.0 + j * (2.0 * self.rng.f64() - 1.0)),
        }
    }

    fn first_gap(&mut self) -> u64 {
        if self.mean_gap_ns.is_finite() {
            self.gap() as u64
        } else {
            u64::MAX
        }
    }

    /// Flows of the arrival at `now`, and the time of the next arrival (`None`: no more).
    pub(crate) fn arrive(&mut self, now: u64, topo: &Topology) -> (Spawned, Option<u64>) {
        let spawned = self.spawn_plans(topo);
        let next = now.saturating_add(self.gap().max(1.0) as u64);
        let more = match &self.kind {
            Kind::Slowloris { remaining, .. } => *remaining > 0,
            _ => true,
        };
        let next = (more && next < self.end_ns && self.mean_gap_ns.is_finite()).then_some(next);
        (spawned, next)
    }

    fn spawn_plans(&mut self, topo: &Topology) -> Spawned {
        let rng = &mut self.rng;
        match &mut self.kind {
            Kind::Benign(BenignClass::Web) => vec![(0, web(rng, topo))],
            Kind::Benign(BenignClass::Tls) => vec![(0, tls(rng, topo))],
            Kind::Benign(BenignClass::Rpc) => vec![(0, rpc(rng, topo))],
            Kind::Benign(BenignClass::Dns) => vec![(0, dns(rng, topo))],
            Kind::SynFlood {
                target,
                attacker,
                port,
            } => {
                let src = attacker.unwrap_or_else(|| public_ip(rng));
                let client = topo.ep(src, ephemeral(rng));
                let mut p = tcp_plan(rng, client, topo.ep(*target, *port), true, Vec::new());
                // Spoofed senders never answer; the server's backlog answers most SYNs.
                p.open = Open::Unanswered {
                    syn_ack: rng.chance(0.7),
                };
                p.ttl[0] = rng.range(40, 250) as u8;
                vec![(0, Plan::Tcp(p))]
            }
            Kind::PortScan {
                attacker,
                target,
                open,
                sport,
                k,
            } => {
                let port = scan_port(*k);
                *k = k.wrapping_add(1);
                let mut p = tcp_plan(
                    rng,
                    topo.ep(*attacker, *sport),
                    topo.ep(*target, port),
                    true,
                    Vec::new(),
                );
                p.open = if open.contains(&port) {
                    Open::Probed
                } else {
                    Open::Refused
                };
                p.window[0] = 1024;
                vec![(0, Plan::Tcp(p))]
            }
            Kind::DnsAmp { victim, reflectors } => {
                let reflector = reflectors[rng.index(reflectors.len())];
                let name = topo.names[rng.index(topo.names.len())].clone();
                let target_len = rng.range(2800, 4000) as usize;
                let mut answers = vec![
                    (3600, RData::A(public_ip(rng).octets())),
                    (3600, RData::A(public_ip(rng).octets())),
                ];
                let mut size = 12 + name.len() + 6 + 2 * 16 + 11;
                while size < target_len {
                    let n = rng.range(1, 4) as usize;
                    let strings: Vec<Vec<u8>> = (0..n)
                        .map(|_| {
                            let l = rng.range(40, 255) as usize;
                            app::printable(rng, l)
                        })
                        .collect();
                    size += 12 + strings.iter().map(|s| s.len() + 1).sum::<usize>();
                    answers.push((3600, RData::Txt(strings)));
                }
                let payload = app::dns_response(
                    rng.next_u32() as u16,
                    &name,
                    qtype::ANY,
                    0,
                    &answers,
                    Some(4096),
                );
                vec![(
                    0,
                    Plan::Udp(vec![Datagram {
                        at_ns: 0,
                        src: topo.ep(reflector, 53),
                        dst: topo.ep(*victim, ephemeral(rng)),
                        ttl: ttl(rng, true),
                        payload,
                    }]),
                )]
            }
            Kind::Slowloris {
                attacker,
                target,
                remaining,
                until_ns,
            } => {
                *remaining = remaining.saturating_sub(1);
                let head = format!(
                    "GET /?{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept-language: en-US,en,q=0.5\r\n",
                    rng.range(0, 2000),
                    target
                );
                let client = topo.ep(*attacker, ephemeral(rng));
                let mut p = tcp_plan(
                    rng,
                    client,
                    topo.ep(*target, 80),
                    true,
                    vec![Step {
                        dir: Dir::ClientToServer,
                        gap_ns: 0,
                        msg: Message::bytes(head.into_bytes()),
                    }],
                );
                p.close = Close::Rst;
                p.trickle = Some(Trickle {
                    interval_ns: SLOWLORIS_INTERVAL_S * SECOND,
                    jitter: 0.1,
                    until_ns: *until_ns,
                });
                vec![(0, Plan::Tcp(p))]
            }
            Kind::Beacon { host, c2, sni } => {
                let client = topo.host(*host, ephemeral(rng));
                let server = topo.ep(*c2, 443);
                let req = rng.range(180, 320) as usize;
                let resp = rng.range(80, 400) as usize;
                let script = tls_script(rng, sni, 1500, &[(req, resp)], 1.0 * MS);
                let mut out = vec![(0, Plan::Tcp(tcp_plan(rng, client, server, true, script)))];
                if rng.chance(1.0 / 6.0) {
                    let up = rng.bounded_pareto(1.3, 50e3, 2e6) as usize;
                    let client = topo.host(*host, ephemeral(rng));
                    let script = tls_script(rng, sni, 1500, &[(up, 120)], 1.0 * MS);
                    let delay = rng.uniform(0.5, 2.0) * SECOND;
                    out.push((
                        delay as u64,
                        Plan::Tcp(tcp_plan(rng, client, server, true, script)),
                    ));
                }
                out
            }
            Kind::Lateral {
                attacker,
                targets,
                k,
            } => {
                let t = targets[(*k as usize / LATERAL_PORTS.len()) % targets.len()];
                let port = LATERAL_PORTS[*k as usize % LATERAL_PORTS.len()];
                *k = k.wrapping_add(1);
                let client = topo.host(*attacker, ephemeral(rng));
                let server = topo.host(t, port);
                let script = match port {
                    22 => vec![
                        (Dir::ServerToClient, app::ssh_banner(true)),
                        (Dir::ClientToServer, app::ssh_banner(false)),
                    ],
                    445 => vec![
                        (Dir::ClientToServer, app::smb2_negotiate_request(rng)),
                        (Dir::ServerToClient, app::smb2_negotiate_response(rng)),
                    ],
                    3389 => vec![
                        (Dir::ClientToServer, app::rdp_connection_request("administrator")),
                        (Dir::ServerToClient, app::rdp_connection_confirm()),
                    ],
                    _ => vec![
                        (
                            Dir::ClientToServer,
                            format!("POST /wsman HTTP/1.1\r\nHost: {}:5985\r\nUser-Agent: Microsoft WinRM Client\r\nContent-Length: 0\r\n\r\n", server.ip).into_bytes(),
                        ),
                        (
                            Dir::ServerToClient,
                            b"HTTP/1.1 401 \r\nServer: Microsoft-HTTPAPI/2.0\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n".to_vec(),
                        ),
                    ],
                };
                let mut steps = Vec::new();
                for (dir, bytes) in script {
                    let g = think(rng, 0.5, 0.5, 20.0);
                    steps.push(Step {
                        dir,
                        gap_ns: g,
                        msg: Message::bytes(bytes),
                    });
                }
                let mut p = tcp_plan(rng, client, server, false, steps);
                // Which admin services a host runs is fixed per host and port.
                let h = splitmix64((t as u64) << 16 | u64::from(port)) % 100;
                let share = match port {
                    22 => 60,
                    445 => 40,
                    3389 => 20,
                    _ => 30,
                };
                if h >= share {
                    p.open = Open::Refused;
                }
                p.close = Close::Fin;
                vec![(0, Plan::Tcp(p))]
            }
        }
    }
}

/// The `k`th port a scan probes: common ports first, then every port in a scrambled order.
fn scan_port(k: u32) -> u16 {
    if let Some(p) = COMMON_PORTS.get(k as usize) {
        return *p;
    }
    // 7919 is prime and coprime to 65535, so this visits every port once per 65535 probes.
    let i = (k as u64 - COMMON_PORTS.len() as u64) % 65535;
    ((i * 7919 + 1) % 65535 + 1) as u16
}

fn http_get(rng: &mut Rng, host: &str) -> Vec<u8> {
    const AGENTS: [&str; 3] = [
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "curl/8.5.0",
    ];
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n",
        app::url_path(rng),
        AGENTS[rng.index(AGENTS.len())]
    )
    .into_bytes()
}

fn web(rng: &mut Rng, topo: &Topology) -> Plan {
    let inbound = rng.chance(0.3);
    let (client, server, host) = if inbound {
        (
            topo.ep(public_ip(rng), ephemeral(rng)),
            topo.host(WEB, 80),
            "www.shop.example".to_string(),
        )
    } else {
        let (ip, name) = topo.site(rng).clone();
        (
            topo.host(topo.client(rng), ephemeral(rng)),
            topo.ep(ip, 80),
            name,
        )
    };
    let n = rng.geometric(0.45, 8);
    let mut script = Vec::new();
    let rtt = external_rtt(rng);
    for i in 0..n {
        let gap = if i == 0 {
            0
        } else {
            think(rng, 300.0, 1.2, 10_000.0)
        };
        script.push(Step {
            dir: Dir::ClientToServer,
            gap_ns: gap,
            msg: Message::bytes(http_get(rng, &host)),
        });
        let body = rng.bounded_pareto(1.2, 200.0, 3e6) as usize;
        const TYPES: [&str; 4] = [
            "text/html",
            "text/css",
            "application/javascript",
            "text/plain",
        ];
        let head = app::http_response_head("200 OK", TYPES[rng.index(4)], body);
        let total = head.len() + body;
        script.push(Step {
            dir: Dir::ServerToClient,
            gap_ns: rtt + think(rng, 2.0, 1.0, 500.0),
            msg: Message {
                head,
                total,
                fill: app::Fill::Text,
            },
        });
    }
    let mut p = tcp_plan(rng, client, server, true, script);
    p.rtt_ns = rtt;
    Plan::Tcp(p)
}

/// A TLS 1.3 conversation: hello, server flight, finished, then request/response pairs of
/// the given plaintext sizes.
fn tls_script(
    rng: &mut Rng,
    sni: &str,
    cert_len: usize,
    pairs: &[(usize, usize)],
    rtt_ns: f64,
) -> Vec<Step> {
    let (hello, sid) = app::tls_client_hello(rng, sni);
    let key = rng.next_u64();
    let mut script = vec![
        Step {
            dir: Dir::ClientToServer,
            gap_ns: 0,
            msg: Message::bytes(hello),
        },
        Step {
            dir: Dir::ServerToClient,
            gap_ns: rtt_ns as u64 + think(rng, 1.0, 0.5, 50.0),
            msg: Message::bytes(app::tls_server_flight(rng, &sid, cert_len)),
        },
        Step {
            dir: Dir::ClientToServer,
            gap_ns: think(rng, 0.3, 0.5, 20.0),
            msg: Message::bytes(app::tls_client_finished(rng)),
        },
    ];
    for (i, &(req, resp)) in pairs.iter().enumerate() {
        let gap = if i == 0 {
            0
        } else {
            think(rng, 400.0, 1.3, 15_000.0)
        };
        script.push(Step {
            dir: Dir::ClientToServer,
            gap_ns: gap,
            msg: Message::tls(key ^ (2 * i as u64), req),
        });
        script.push(Step {
            dir: Dir::ServerToClient,
            gap_ns: rtt_ns as u64 + think(rng, 3.0, 1.0, 500.0),
            msg: Message::tls(key ^ (2 * i as u64 + 1), resp),
        });
    }
    script
}

fn tls(rng: &mut Rng, topo: &Topology) -> Plan {
    let inbound = rng.chance(0.2);
    let (client, server, sni) = if inbound {
        (
            topo.ep(public_ip(rng), ephemeral(rng)),
            topo.host(WEB, 443),
            "www.shop.example".to_string(),
        )
    } else {
        let (ip, name) = topo.site(rng).clone();
        (
            topo.host(topo.client(rng), ephemeral(rng)),
            topo.ep(ip, 443),
            name,
        )
    };
    let rtt = external_rtt(rng);
    let n = rng.geometric(0.35, 12);
    let pairs: Vec<(usize, usize)> = (0..n)
        .map(|_| {
            (
                rng.lognormal(400.0, 0.5).clamp(60.0, 4000.0) as usize,
                rng.bounded_pareto(1.1, 300.0, 8e6) as usize,
            )
        })
        .collect();
    let cert = rng.range(2500, 5000) as usize;
    let script = tls_script(rng, &sni, cert, &pairs, rtt as f64);
    let mut p = tcp_plan(rng, client, server, true, script);
    p.rtt_ns = rtt;
    Plan::Tcp(p)
}

fn json_body(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut s = format!("{{{prefix},\"data\":\"");
    let pad = len.saturating_sub(s.len() + 2).max(1);
    s.push_str(&String::from_utf8_lossy(&app::printable(rng, pad)));
    s.push_str("\"}");
    s
}

fn rpc(rng: &mut Rng, topo: &Topology) -> Plan {
    const SERVICES: [&str; 6] = [
        "orders",
        "inventory",
        "users",
        "payments",
        "catalog",
        "auth",
    ];
    const METHODS: [&str; 5] = ["Get", "List", "Update", "Create", "Check"];
    let services = topo.rpc_hosts();
    let server_i = services.start + rng.index(services.len());
    let mut client_i = topo.client(rng);
    if client_i == server_i {
        client_i = if server_i + 1 < topo.hosts.len() {
            server_i + 1
        } else {
            RESOLVER
        };
    }
    let svc = SERVICES[(server_i - services.start) % SERVICES.len()];
    let client = topo.host(client_i, ephemeral(rng));
    let server = topo.host(server_i, 8080);
    let rtt = internal_rtt(rng);
    let n = rng.geometric(0.15, 60);
    let mut script = Vec::new();
    for i in 0..n {
        let method = METHODS[rng.index(METHODS.len())];
        let id = rng.next_u32();
        let req_len = rng.lognormal(300.0, 0.8).clamp(40.0, 16_000.0) as usize;
        let body = json_body(
            rng,
            &format!("\"request_id\":{id},\"method\":\"{method}\""),
            req_len,
        );
        let head = format!(
            "POST /v1/{svc}/{method} HTTP/1.1\r\nHost: {svc}.internal:8080\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let gap = if i == 0 {
            0
        } else {
            think(rng, 20.0, 1.5, 5_000.0)
        };
        script.push(Step {
            dir: Dir::ClientToServer,
            gap_ns: gap,
            msg: Message::bytes(head.into_bytes()),
        });
        let resp_len = rng.lognormal(1200.0, 1.2).clamp(40.0, 256_000.0) as usize;
        let body = json_body(
            rng,
            &format!("\"request_id\":{id},\"status\":\"ok\""),
            resp_len,
        );
        let mut head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        head.push_str(&body);
        script.push(Step {
            dir: Dir::ServerToClient,
            gap_ns: rtt + think(rng, 1.0, 1.0, 200.0),
            msg: Message::bytes(head.into_bytes()),
        });
    }
    let mut p = tcp_plan(rng, client, server, false, script);
    p.rtt_ns = rtt;
    p.close = Close::Fin;
    Plan::Tcp(p)
}

fn dns_answers(rng: &mut Rng, name: &str, qt: u16) -> Vec<(u32, RData)> {
    let ttl = rng.range(30, 3600) as u32;
    let mut answers = Vec::new();
    if rng.chance(0.25) {
        answers.push((ttl, RData::Cname(format!("edge.{name}"))));
    }
    for _ in 0..rng.range(1, 4) {
        let rd = if qt == qtype::AAAA {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x26, 0x06, 0x47, 0x00]);
            rng.fill(&mut a[8..]);
            RData::Aaaa(a)
        } else {
            RData::A(public_ip(rng).octets())
        };
        answers.push((ttl, rd));
    }
    answers
}

fn dns(rng: &mut Rng, topo: &Topology) -> Plan {
    let name = topo.names[topo.name_pop.sample(rng)].clone();
    let qt = if rng.chance(0.7) {
        qtype::A
    } else {
        qtype::AAAA
    };
    let edns = rng.chance(0.5);
    let client = topo.host(topo.client(rng), ephemeral(rng));
    let resolver = topo.host(RESOLVER, 53);
    let id = rng.next_u32() as u16;
    let nx = rng.chance(0.04);
    let answers = if nx {
        Vec::new()
    } else {
        dns_answers(rng, &name, qt)
    };
    let rcode = if nx { 3 } else { 0 };
    let mut out = vec![Datagram {
        at_ns: 0,
        src: client,
        dst: resolver,
        ttl: 64,
        payload: app::dns_query(id, &name, qt, edns),
    }];
    let mut t = 0u64;
    if rng.chance(0.25) {
        // Cache miss: the resolver asks upstream first.
        let up = topo.ep(topo.upstream[rng.index(4)], 53);
        let from = topo.host(RESOLVER, ephemeral(rng));
        let uid = rng.next_u32() as u16;
        t += think(rng, 0.1, 0.5, 5.0);
        out.push(Datagram {
            at_ns: t,
            src: from,
            dst: up,
            ttl: 64,
            payload: app::dns_query(uid, &name, qt, true),
        });
        t += external_rtt(rng);
        out.push(Datagram {
            at_ns: t,
            src: up,
            dst: from,
            ttl: ttl(rng, true),
            payload: app::dns_response(uid, &name, qt, rcode, &answers, Some(1232)),
        });
    }
    t += think(rng, 0.2, 0.6, 10.0);
    out.push(Datagram {
        at_ns: t,
        src: resolver,
        dst: client,
        ttl: 64,
        payload: app::dns_response(id, &name, qt, rcode, &answers, edns.then_some(1232)),
    });
    Plan::Udp(out)
}
