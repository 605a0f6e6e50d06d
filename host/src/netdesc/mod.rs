//! Network descriptions: tenants' networks, VMs, shadows, mirror rules and ACL rules, read
//! from TOML (the format is documented in the README and `examples/`), checked, and compiled
//! into the table entries that program one NIC.
//!
//! Every problem is reported with the file and the line of the entry at fault, and all of
//! them at once, so a description can be fixed in one pass.

mod file;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
};

use shadownet_hw::{
    NUM_SESSIONS, NUM_VPORTS, Port,
    layout::{
        Mac, PortRange, Prefix, VNI_MAX,
        acl::{AclAction, AclRule, Verdict},
        map::{MapKey, MapValue},
        mirror_filter::{MIN_TRUNCATE, MirrorAction, MirrorFilter, MirrorVerdict},
        rule::{DirectionMatch, RuleMatch},
        session::{Encap, MIN_BURST, MirrorSession, Mode},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::VniEntry,
        vport::VportEntry,
    },
    table::TableId,
};
use toml::Spanned;

use crate::{
    driver::{Device, DriverError, Nic, PortConfig},
    entries::{self, ReplicaAt, RuleFields, VfAllocator},
};

/// One problem in a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Line (1-based) of the entry at fault, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Why a description cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DescError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line, when known.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The description is inconsistent.
    #[error("{}", Invalid(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct Invalid<'a>(&'a Path, &'a [Problem]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.1.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.0.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.1 {
            match p.line {
                Some(l) => write!(f, "\n  {}:{l}: {}", self.0.display(), p.message)?,
                None => write!(f, "\n  {}: {}", self.0.display(), p.message)?,
            }
        }
        Ok(())
    }
}

/// A local port of the NIC with what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPort {
    /// The VF.
    pub port: Port,
    /// Name: the VM's, or `<shadow>/<vm>` for a shadow node.
    pub name: String,
    /// VNI it is bound to.
    pub vni: u32,
}

/// Everything a description programs into one NIC.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Substrate addressing.
    pub port: PortConfig,
    /// Virtual networks.
    pub vnis: Vec<(u32, VniEntry)>,
    /// VF bindings.
    pub vports: Vec<(u16, VportEntry)>,
    /// Overlay to substrate map.
    pub map: Vec<(MapKey, MapValue)>,
    /// Production to shadow map.
    pub shadow_map: Vec<(ShadowMapKey, ShadowMapValue)>,
    /// Mirror sessions.
    pub sessions: Vec<(u16, MirrorSession)>,
    /// ACL rules by slot.
    pub acl: Vec<(u32, AclRule)>,
    /// Mirror filters by slot.
    pub mirror_filters: Vec<(u32, MirrorFilter)>,
    /// Local ports and their names.
    pub local_ports: Vec<LocalPort>,
    /// Networks by name (for reports).
    pub networks: BTreeMap<String, u32>,
}

impl Plan {
    /// Reads and compiles a description file.
    pub fn from_path(path: &Path) -> Result<Plan, DescError> {
        let text = std::fs::read_to_string(path).map_err(|source| DescError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Plan::from_str(&text, path)
    }

    /// Compiles description text; `path` names it in messages.
    pub fn from_str(text: &str, path: &Path) -> Result<Plan, DescError> {
        let parsed: file::File = toml::from_str(text).map_err(|e| DescError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        let mut c = Compiler {
            text,
            problems: Vec::new(),
            plan: Plan::default(),
        };
        c.compile(&parsed);
        if c.problems.is_empty() {
            Ok(c.plan)
        } else {
            Err(DescError::Invalid {
                path: path.to_path_buf(),
                problems: c.problems,
            })
        }
    }

    /// The port with this name: `uplink`, `pf`, `vfN`, or a local VM's name.
    pub fn port_named(&self, name: &str) -> Option<Port> {
        match name {
            "uplink" => return Some(Port::Uplink),
            "pf" | "host" => return Some(Port::Pf),
            _ => {}
        }
        if let Some(n) = name.strip_prefix("vf").and_then(|n| n.parse::<u16>().ok())
            && (n as usize) < NUM_VPORTS
        {
            return Some(Port::Vport(n));
        }
        self.local_ports
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.port)
    }

    /// The name of a port for reports.
    pub fn port_label(&self, port: Port) -> String {
        match self.local_ports.iter().find(|p| p.port == port) {
            Some(p) => format!("{port} ({})", p.name),
            None => port.to_string(),
        }
    }

    /// Programs the plan into a NIC: reset, addressing, every table, sessions, then enables
    /// forwarding.
    pub fn apply<D: Device>(&self, nic: &mut Nic<D>, trace: bool) -> Result<(), DriverError> {
        let started = std::time::Instant::now();
        nic.reset()?;
        nic.configure_port(&self.port)?;
        for (vni, e) in &self.vnis {
            nic.write_vni(*vni, e)?;
        }
        for (p, e) in &self.vports {
            nic.write_vport(*p, e)?;
        }
        for (k, v) in &self.map {
            nic.write_map(k, v)?;
        }
        for (k, v) in &self.shadow_map {
            nic.write_shadow_map(k, v)?;
        }
        for (s, cfg) in &self.sessions {
            nic.configure_session(*s, cfg)?;
        }
        for (slot, r) in &self.acl {
            nic.write_acl(*slot, r)?;
        }
        for (slot, f) in &self.mirror_filters {
            nic.write_mirror_filter(*slot, f)?;
        }
        nic.set_enabled(true, trace)?;
        tracing::info!(
            entries = ?self.entry_counts(),
            sessions = self.sessions.len(),
            millis = started.elapsed().as_millis() as u64,
            "programmed the NIC"
        );
        Ok(())
    }

    /// Table entries the plan programs, by table.
    pub fn entry_counts(&self) -> Vec<(TableId, usize)> {
        vec![
            (TableId::Vport, self.vports.len()),
            (TableId::Vni, self.vnis.len()),
            (TableId::Acl, self.acl.len()),
            (TableId::Map, self.map.len()),
            (TableId::MirrorFilter, self.mirror_filters.len()),
            (TableId::ShadowMap, self.shadow_map.len()),
        ]
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// A VM behind this NIC, waiting for its VF.
struct LocalVm {
    name: String,
    vni: u32,
    mac: Mac,
    vf: Option<u16>,
    line: Option<usize>,
    ip: IpAddr,
}

/// A VM after checking.
struct Vm {
    network: String,
    ip: IpAddr,
    local_vport: Option<u16>,
}

struct Compiler<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    plan: Plan,
}

/// Where a VM or shadow node runs.
enum Host {
    Local(Option<u16>),
    Remote(IpAddr, Mac),
}

impl Compiler<'_> {
    fn at<T>(&self, item: &Spanned<T>) -> Option<usize> {
        Some(line_of(self.text, item.span().start))
    }

    /// Looks up a referenced entry; reports it undefined unless it was declared (and so
    /// already reported for its own problem).
    fn reference<V: Clone>(
        &mut self,
        line: Option<usize>,
        what: &str,
        kind: &str,
        name: &str,
        valid: &BTreeMap<String, V>,
        declared: &BTreeSet<&str>,
    ) -> Option<V> {
        let found = valid.get(name).cloned();
        if found.is_none() && !declared.contains(name) {
            self.problem(line, format!("{what}: {kind} '{name}' is not defined"));
        }
        found
    }

    fn problem(&mut self, line: Option<usize>, message: String) {
        self.problems.push(Problem { line, message });
    }

    fn parse_ip(&mut self, line: Option<usize>, what: &str, s: &str) -> Option<IpAddr> {
        self.ok(line, what, entries::parse_ip(s))
    }

    fn parse_mac(&mut self, line: Option<usize>, what: &str, s: &str) -> Option<Mac> {
        self.ok(line, what, entries::parse_mac(s))
    }

    fn parse_prefix(
        &mut self,
        line: Option<usize>,
        what: &str,
        s: &Option<String>,
    ) -> Option<Option<Prefix>> {
        let Some(s) = s else { return Some(None) };
        self.ok(line, what, entries::parse_prefix(s)).map(Some)
    }

    fn parse_ports(
        &mut self,
        line: Option<usize>,
        what: &str,
        s: &Option<String>,
    ) -> Option<PortRange> {
        let Some(s) = s else {
            return Some(PortRange::ANY);
        };
        self.ok(line, what, entries::parse_ports(s))
    }

    fn parse_protocol(&mut self, line: Option<usize>, s: &Option<String>) -> Option<Option<u8>> {
        let Some(s) = s else { return Some(None) };
        match entries::parse_protocol(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.problem(line, e);
                None
            }
        }
    }

    /// The value, or a problem `what: message`.
    fn ok<T>(&mut self, line: Option<usize>, what: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(line, format!("{what}: {e}"));
                None
            }
        }
    }

    fn check_vni(&mut self, line: Option<usize>, what: &str, vni: u32) -> bool {
        if vni == 0 || vni > VNI_MAX {
            self.problem(line, format!("{what}: VNI {vni} is outside 1-{VNI_MAX}"));
            return false;
        }
        true
    }

    fn host(
        &mut self,
        line: Option<usize>,
        what: &str,
        host: &str,
        host_mac: &Option<String>,
        vf: Option<u16>,
    ) -> Option<Host> {
        if host == "local" {
            if host_mac.is_some() {
                self.problem(line, format!("{what}: host_mac is only for remote hosts"));
            }
            return Some(Host::Local(vf));
        }
        if vf.is_some() {
            self.problem(
                line,
                format!("{what}: vf is only for VMs on this NIC (host = \"local\")"),
            );
        }
        let ip = self.parse_ip(line, &format!("{what}: host"), host)?;
        let Some(mac) = host_mac else {
            self.problem(
                line,
                format!(
                    "{what}: a remote host needs host_mac (the substrate next hop toward {host})"
                ),
            );
            return None;
        };
        let mac = self.parse_mac(line, &format!("{what}: host_mac"), mac)?;
        let has_family = match ip {
            IpAddr::V4(_) => self.plan.port.local_ipv4.is_some(),
            IpAddr::V6(_) => self.plan.port.local_ipv6.is_some(),
        };
        if !has_family {
            self.problem(
                line,
                format!(
                    "{what}: host {ip} needs a {} substrate address in [nic]",
                    if ip.is_ipv4() { "ipv4" } else { "ipv6" }
                ),
            );
        }
        Some(Host::Remote(ip, mac))
    }

    fn compile(&mut self, f: &file::File) {
        // Names declared, valid or not: a reference to an entry that failed its own checks
        // is not reported again as undefined.
        let declared_networks: BTreeSet<&str> = f
            .network
            .iter()
            .map(|n| n.get_ref().name.as_str())
            .collect();
        let declared_vms: BTreeSet<&str> = f.vm.iter().map(|v| v.get_ref().name.as_str()).collect();
        let declared_shadows: BTreeSet<&str> =
            f.shadow.iter().map(|s| s.get_ref().name.as_str()).collect();
        self.nic(&f.nic);
        let mut tenants = BTreeSet::new();
        for t in &f.tenant {
            if !tenants.insert(t.get_ref().name.clone()) {
                self.problem(
                    self.at(t),
                    format!("tenant '{}' is defined twice", t.get_ref().name),
                );
            }
        }
        let mut vnis_used: BTreeMap<u32, String> = BTreeMap::new();
        let mut networks: BTreeMap<String, (u32, Vec<Prefix>)> = BTreeMap::new();
        for n in &f.network {
            let line = self.at(n);
            let d = n.get_ref();
            let what = format!("network '{}'", d.name);
            if !tenants.contains(&d.tenant) {
                self.problem(
                    line,
                    format!("{what}: tenant '{}' is not defined", d.tenant),
                );
            }
            if networks.contains_key(&d.name) {
                self.problem(line, format!("{what} is defined twice"));
                continue;
            }
            if self.check_vni(line, &what, d.vni)
                && let Some(other) = vnis_used.insert(d.vni, what.clone())
            {
                self.problem(
                    line,
                    format!("{what}: VNI {} is already used by {other}", d.vni),
                );
            }
            let mut prefixes: Vec<Prefix> = Vec::new();
            for p in &d.prefixes {
                if let Some(Some(p)) = self.parse_prefix(line, &what, &Some(p.clone())) {
                    if let Some(o) = prefixes.iter().find(|o| o.overlaps(&p)) {
                        self.problem(line, format!("{what}: prefixes {o} and {p} overlap"));
                    }
                    prefixes.push(p);
                }
            }
            let deny = |x: Option<file::Default>| x == Some(file::Default::Deny);
            self.plan.vnis.push((
                d.vni,
                VniEntry {
                    shadow: false,
                    miss_to_host: d.miss.unwrap_or(file::Miss::Host) == file::Miss::Host,
                    default_deny_to_vm: deny(d.default_to_vm),
                    default_deny_from_vm: deny(d.default_from_vm),
                    production_vni: None,
                },
            ));
            self.plan.networks.insert(d.name.clone(), d.vni);
            networks.insert(d.name.clone(), (d.vni, prefixes));
        }

        let mut vfs = VfAllocator::default();
        let mut vms: BTreeMap<String, Vm> = BTreeMap::new();
        let mut addresses: BTreeSet<(u32, IpAddr)> = BTreeSet::new();
        let mut pending_local: Vec<LocalVm> = Vec::new();
        for v in &f.vm {
            let line = self.at(v);
            let d = v.get_ref();
            let what = format!("vm '{}'", d.name);
            if vms.contains_key(&d.name) {
                self.problem(line, format!("{what} is defined twice"));
                continue;
            }
            let Some((vni, prefixes)) = self.reference(
                line,
                &what,
                "network",
                &d.network,
                &networks,
                &declared_networks,
            ) else {
                continue;
            };
            let ip = self.parse_ip(line, &format!("{what}: ip"), &d.ip);
            let mac = self.parse_mac(line, &format!("{what}: mac"), &d.mac);
            let host = self.host(line, &what, &d.host, &d.host_mac, d.vf);
            let (Some(ip), Some(mac), Some(host)) = (ip, mac, host) else {
                continue;
            };
            if !prefixes.is_empty() && !prefixes.iter().any(|p| p.contains(ip)) {
                self.problem(
                    line,
                    format!(
                        "{what}: {ip} is outside network '{}' ({})",
                        d.network,
                        list(&prefixes)
                    ),
                );
            }
            if !addresses.insert((vni, ip)) {
                self.problem(
                    line,
                    format!(
                        "{what}: address {ip} is already used in network '{}'",
                        d.network
                    ),
                );
            }
            let local_vport = match host {
                Host::Local(vf) => {
                    pending_local.push(LocalVm {
                        name: d.name.clone(),
                        vni,
                        mac,
                        vf,
                        line,
                        ip,
                    });
                    Some(0) // assigned below, once explicit VFs are known
                }
                Host::Remote(hip, hmac) => {
                    self.plan.map.push((
                        MapKey { vni, ip },
                        MapValue {
                            substrate_ip: hip,
                            substrate_mac: hmac,
                            local_vport: None,
                            shadow: false,
                        },
                    ));
                    None
                }
            };
            vms.insert(
                d.name.clone(),
                Vm {
                    network: d.network.clone(),
                    ip,
                    local_vport,
                },
            );
        }

        // Shadow nodes may also claim VFs: collect every explicit VF first.
        for l in &pending_local {
            if let Some(vf) = l.vf
                && let Err(e) = vfs.claim(vf, &l.name)
            {
                self.problem(l.line, e);
            }
        }
        for s in &f.shadow {
            for n in &s.get_ref().node {
                if n.host == "local"
                    && let Some(vf) = n.vf
                    && let Err(e) = vfs.claim(vf, &format!("{}/{}", s.get_ref().name, n.vm))
                {
                    self.problem(self.at(s), e);
                }
            }
        }
        for LocalVm {
            name,
            vni,
            mac,
            vf,
            line,
            ip,
        } in pending_local
        {
            let vport = match vf {
                Some(v) => v,
                None => match vfs.next(&name) {
                    Ok(v) => v,
                    Err(e) => {
                        self.problem(line, e);
                        continue;
                    }
                },
            };
            if let Some(vm) = vms.get_mut(&name) {
                vm.local_vport = Some(vport);
            }
            self.plan.vports.push((
                vport,
                VportEntry {
                    vni,
                    mac,
                    enabled: true,
                },
            ));
            self.plan.map.push((
                MapKey { vni, ip },
                entries::local_map_value(&self.plan.port, ip, vport, false),
            ));
            self.plan.local_ports.push(LocalPort {
                port: Port::Vport(vport),
                name,
                vni,
            });
        }

        let mut shadows: BTreeMap<String, (u16, String)> = BTreeMap::new();
        let mut sessions = BTreeSet::new();
        for s in &f.shadow {
            let line = self.at(s);
            let d = s.get_ref();
            let what = format!("shadow '{}'", d.name);
            if shadows.contains_key(&d.name) {
                self.problem(line, format!("{what} is defined twice"));
                continue;
            }
            let Some((prod_vni, _)) = self.reference(
                line,
                &what,
                "network",
                &d.network,
                &networks,
                &declared_networks,
            ) else {
                continue;
            };
            if self.check_vni(line, &what, d.vni)
                && let Some(other) = vnis_used.insert(d.vni, what.clone())
            {
                self.problem(
                    line,
                    format!("{what}: VNI {} is already used by {other}", d.vni),
                );
            }
            if d.session as usize >= NUM_SESSIONS {
                self.problem(
                    line,
                    format!(
                        "{what}: session {} is beyond the NIC's {NUM_SESSIONS} sessions",
                        d.session
                    ),
                );
                continue;
            }
            if !sessions.insert(d.session) {
                self.problem(
                    line,
                    format!(
                        "{what}: session {} is already used by another shadow",
                        d.session
                    ),
                );
            }
            let collector_ip =
                self.parse_ip(line, &format!("{what}: collector ip"), &d.collector.ip);
            let collector_mac =
                self.parse_mac(line, &format!("{what}: collector mac"), &d.collector.mac);
            let (policer_mbps, policer_burst) = match &d.policer {
                Some(p) => {
                    if p.mbps > 0 && p.burst < MIN_BURST {
                        self.problem(line, format!("{what}: policer burst {} bytes is below {MIN_BURST} (one full-size copy must fit)", p.burst));
                    }
                    (p.mbps, p.burst)
                }
                None => (0, 0),
            };
            if let (Some(ip), Some(mac)) = (collector_ip, collector_mac) {
                self.plan.sessions.push((
                    d.session,
                    MirrorSession {
                        enabled: true,
                        encap: match d.encap.unwrap_or(file::EncapDesc::Geneve) {
                            file::EncapDesc::Vxlan => Encap::Vxlan,
                            file::EncapDesc::Geneve => Encap::Geneve,
                        },
                        mode: match d.mode.unwrap_or(file::ModeDesc::Mirror) {
                            file::ModeDesc::Mirror => Mode::Mirror,
                            file::ModeDesc::Redirect => Mode::Redirect,
                        },
                        shadow_vni: d.vni,
                        collector_ip: ip,
                        collector_mac: mac,
                        policer_mbps,
                        policer_burst,
                    },
                ));
            }
            self.plan
                .vnis
                .push((d.vni, entries::shadow_vni_entry(prod_vni)));
            self.plan.networks.insert(d.name.clone(), d.vni);
            let mut seen = BTreeSet::new();
            for n in &d.node {
                let nwhat = format!("{what}: node for vm '{}'", n.vm);
                let Some(vm) = vms.get(&n.vm) else {
                    if !declared_vms.contains(n.vm.as_str()) {
                        self.problem(line, format!("{nwhat}: vm '{}' is not defined", n.vm));
                    }
                    continue;
                };
                if vm.network != d.network {
                    self.problem(
                        line,
                        format!(
                            "{nwhat}: vm '{}' is in network '{}', not '{}'",
                            n.vm, vm.network, d.network
                        ),
                    );
                    continue;
                }
                if !seen.insert(n.vm.clone()) {
                    self.problem(line, format!("{nwhat}: the vm has two shadow nodes"));
                    continue;
                }
                let ip = vm.ip;
                let Some(host) = self.host(line, &nwhat, &n.host, &n.host_mac, n.vf) else {
                    continue;
                };
                let at = match host {
                    Host::Local(vf) => {
                        let name = format!("{}/{}", d.name, n.vm);
                        let vport = match vf {
                            Some(v) => v,
                            None => match vfs.next(&name) {
                                Ok(v) => v,
                                Err(e) => {
                                    self.problem(line, e);
                                    continue;
                                }
                            },
                        };
                        let vm_mac =
                            f.vm.iter()
                                .find(|v| v.get_ref().name == n.vm)
                                .and_then(|v| v.get_ref().mac.parse::<Mac>().ok())
                                .unwrap_or_default();
                        self.plan.vports.push((
                            vport,
                            VportEntry {
                                vni: d.vni,
                                mac: vm_mac,
                                enabled: true,
                            },
                        ));
                        self.plan.local_ports.push(LocalPort {
                            port: Port::Vport(vport),
                            name,
                            vni: d.vni,
                        });
                        ReplicaAt {
                            substrate_ip: self.local_substrate(ip),
                            substrate_mac: self.plan.port.local_mac,
                            local_vport: Some(vport),
                        }
                    }
                    Host::Remote(hip, hmac) => ReplicaAt {
                        substrate_ip: hip,
                        substrate_mac: hmac,
                        local_vport: None,
                    },
                };
                let (map, shadow_map) =
                    entries::replica_entries(d.session, prod_vni, d.vni, ip, at);
                self.plan.map.push(map);
                self.plan.shadow_map.push(shadow_map);
            }
            shadows.insert(d.name.clone(), (d.session, d.network.clone()));
        }

        let mut slot = 0u32;
        for m in &f.mirror {
            let line = self.at(m);
            let d = m.get_ref();
            let what = format!("mirror rule for shadow '{}'", d.shadow);
            let Some((session, network)) = shadows.get(&d.shadow).cloned() else {
                if !declared_shadows.contains(d.shadow.as_str()) {
                    self.problem(
                        line,
                        format!("{what}: shadow '{}' is not defined", d.shadow),
                    );
                }
                continue;
            };
            let targets: Vec<u16> = match &d.vm {
                Some(name) => match vms.get(name) {
                    None => {
                        if !declared_vms.contains(name.as_str()) {
                            self.problem(line, format!("{what}: vm '{name}' is not defined"));
                        }
                        continue;
                    }
                    Some(vm) if vm.network != network => {
                        self.problem(line, format!("{what}: vm '{name}' is in network '{}', not the shadowed network '{network}'", vm.network));
                        continue;
                    }
                    Some(vm) => match vm.local_vport {
                        Some(v) => vec![v],
                        None => {
                            self.problem(line, format!("{what}: vm '{name}' is not on this NIC; its traffic is mirrored by the NIC of its host"));
                            continue;
                        }
                    },
                },
                None => vms
                    .values()
                    .filter(|v| v.network == network)
                    .filter_map(|v| v.local_vport)
                    .collect(),
            };
            let Some(matches) = self.rule_match(
                line,
                &what,
                None,
                d.direction,
                &d.protocol,
                &d.src,
                &d.dst,
                &d.src_ports,
                &d.dst_ports,
                false,
            ) else {
                continue;
            };
            let sample = d.sample.unwrap_or(1);
            if sample == 0 {
                self.problem(
                    line,
                    format!("{what}: sample must be at least 1 (one copy in N packets)"),
                );
                continue;
            }
            if let Some(t) = d.truncate
                && t < MIN_TRUNCATE
            {
                self.problem(line, format!("{what}: truncate {t} is shorter than an Ethernet header ({MIN_TRUNCATE} bytes)"));
                continue;
            }
            for vport in targets {
                let action = MirrorAction {
                    priority: d.priority.unwrap_or(100),
                    verdict: match d.action.unwrap_or(file::MirrorActionDesc::Mirror) {
                        file::MirrorActionDesc::Mirror => MirrorVerdict::Mirror,
                        file::MirrorActionDesc::Skip => MirrorVerdict::DoNotMirror,
                    },
                    rule_id: line.unwrap_or(0) as u32,
                    session,
                    truncate: d.truncate,
                    sample_one_in: sample,
                };
                let matches = RuleMatch {
                    scope: Some(vport as u32),
                    ..matches
                };
                if slot >= TableId::MirrorFilter.capacity() {
                    self.problem(
                        line,
                        format!(
                            "{what}: more than {} mirror filters",
                            TableId::MirrorFilter.capacity()
                        ),
                    );
                    break;
                }
                self.plan
                    .mirror_filters
                    .push((slot, MirrorFilter { matches, action }));
                slot += 1;
            }
        }

        for (slot, a) in f.acl.iter().enumerate() {
            let line = self.at(a);
            let d = a.get_ref();
            let what = format!("acl rule for network '{}'", d.network);
            let Some((vni, _)) = self.reference(
                line,
                &what,
                "network",
                &d.network,
                &networks,
                &declared_networks,
            ) else {
                continue;
            };
            if slot as u32 >= TableId::Acl.capacity() {
                self.problem(
                    line,
                    format!("{what}: more than {} ACL rules", TableId::Acl.capacity()),
                );
                break;
            }
            let Some(matches) = self.rule_match(
                line,
                &what,
                Some(vni),
                d.direction,
                &d.protocol,
                &d.src,
                &d.dst,
                &d.src_ports,
                &d.dst_ports,
                d.connections_only,
            ) else {
                continue;
            };
            let verdict = match (d.action, d.rate_pps, d.burst) {
                (file::AclActionDesc::Police, Some(rate_pps @ 1..), burst) if burst != Some(0) => {
                    Verdict::Police {
                        rate_pps,
                        burst: burst.unwrap_or(rate_pps),
                    }
                }
                (file::AclActionDesc::Police, _, _) => {
                    self.problem(
                        line,
                        format!(
                            "{what}: action police needs rate_pps of at least 1 (and a burst, if given, of at least 1)"
                        ),
                    );
                    continue;
                }
                (_, None, None) => match d.action {
                    file::AclActionDesc::Deny => Verdict::Deny,
                    _ => Verdict::Allow,
                },
                _ => {
                    self.problem(
                        line,
                        format!("{what}: rate_pps and burst go with action police"),
                    );
                    continue;
                }
            };
            self.plan.acl.push((
                slot as u32,
                AclRule {
                    matches,
                    action: AclAction {
                        priority: d.priority,
                        verdict,
                        rule_id: line.unwrap_or(0) as u32,
                    },
                },
            ));
        }
        self.plan.local_ports.sort_by_key(|p| p.port);
    }

    #[allow(clippy::too_many_arguments)]
    fn rule_match(
        &mut self,
        line: Option<usize>,
        what: &str,
        scope: Option<u32>,
        direction: Option<file::DirectionDesc>,
        protocol: &Option<String>,
        src: &Option<String>,
        dst: &Option<String>,
        src_ports: &Option<String>,
        dst_ports: &Option<String>,
        tcp_syn: bool,
    ) -> Option<RuleMatch> {
        let protocol = self.parse_protocol(line, protocol)?;
        let src = self.parse_prefix(line, &format!("{what}: src"), src)?;
        let dst = self.parse_prefix(line, &format!("{what}: dst"), dst)?;
        let sport = self.parse_ports(line, &format!("{what}: src_ports"), src_ports)?;
        let dport = self.parse_ports(line, &format!("{what}: dst_ports"), dst_ports)?;
        let fields = RuleFields {
            direction: match direction.unwrap_or(file::DirectionDesc::Both) {
                file::DirectionDesc::ToVm => DirectionMatch::ToVm,
                file::DirectionDesc::FromVm => DirectionMatch::FromVm,
                file::DirectionDesc::Both => DirectionMatch::Both,
            },
            protocol,
            src,
            dst,
            sport,
            dport,
            tcp_syn,
        };
        self.ok(line, what, fields.scoped(scope))
    }

    fn nic(&mut self, n: &Spanned<file::NicDesc>) {
        let line = self.at(n);
        let d = n.get_ref();
        if let Some(mac) = self.parse_mac(line, "nic: mac", &d.mac) {
            self.plan.port.local_mac = mac;
        }
        if let Some(s) = &d.ipv4 {
            match s.parse() {
                Ok(a) => self.plan.port.local_ipv4 = Some(a),
                Err(_) => self.problem(line, format!("nic: ipv4 '{s}' is not an IPv4 address")),
            }
        }
        if let Some(s) = &d.ipv6 {
            match s.parse() {
                Ok(a) => self.plan.port.local_ipv6 = Some(a),
                Err(_) => self.problem(line, format!("nic: ipv6 '{s}' is not an IPv6 address")),
            }
        }
        if d.ipv4.is_none() && d.ipv6.is_none() {
            self.problem(
                line,
                "nic: needs ipv4 or ipv6 (its substrate address)".to_string(),
            );
        }
        if let Some(mtu) = d.mtu {
            if !(576..=65535).contains(&mtu) {
                self.problem(line, format!("nic: mtu {mtu} is outside 576-65535"));
            }
            self.plan.port.uplink_mtu = mtu;
        }
        if let Some(p) = d.vxlan_port {
            self.plan.port.vxlan_port = p;
        }
        if let Some(p) = d.geneve_port {
            self.plan.port.geneve_port = p;
        }
        if self.plan.port.vxlan_port == 0 || self.plan.port.geneve_port == 0 {
            self.problem(line, "nic: tunnel ports must not be 0".to_string());
        }
        if self.plan.port.vxlan_port == self.plan.port.geneve_port {
            self.problem(
                line,
                "nic: vxlan_port and geneve_port must differ".to_string(),
            );
        }
    }

    fn local_substrate(&self, overlay: IpAddr) -> IpAddr {
        entries::local_substrate(&self.plan.port, overlay)
    }
}

fn list(prefixes: &[Prefix]) -> String {
    prefixes
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
