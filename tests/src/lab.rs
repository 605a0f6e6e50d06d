//! A lab: the simulated NIC, programmed through the driver with a small production network
//! and its shadow, and a way to send frames and see what leaves.
//!
//! ```text
//! NIC 10.0.0.1 (02:..:01)
//!   vf0  web1    192.168.10.11  VNI 5001 (production)
//!   vf1  web2    192.168.10.12  VNI 5001 (production)
//!   vf2  web2'   192.168.10.12  VNI 9001 (shadow of 5001)
//! remote
//!   db1          192.168.10.21  VNI 5001 on host 10.0.0.2 (02:..:02)
//!   db1'         192.168.10.21  VNI 9001 on shadow host 10.0.0.3 (02:..:03)
//!   web1'        192.168.10.11  VNI 9001 on shadow host 10.0.0.3
//! session 1      Geneve toward shadow VNI 9001, collector 10.0.0.50 (02:..:50)
//! ```

use std::net::{IpAddr, Ipv4Addr};

use shadownet_host::driver::{Nic, PortConfig, sim::SimDevice};
use shadownet_hw::{
    Port,
    layout::{
        Mac, PortRange,
        acl::{AclAction, AclRule, Verdict},
        map::{MapKey, MapValue},
        mirror_filter::{MirrorAction, MirrorFilter, MirrorVerdict},
        rule::{DirectionMatch, Family, RuleMatch},
        session::{Encap, MirrorSession, Mode},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::VniEntry,
        vport::VportEntry,
    },
    timing::Timing,
};
use shadownet_sim::{Departure, NicModel, Sink, datapath::Queue};

use crate::packet::{ip, mac};

/// Production VNI.
pub const PROD_VNI: u32 = 5001;
/// Shadow VNI.
pub const SHADOW_VNI: u32 = 9001;
/// The mirror session of the lab.
pub const SESSION: u16 = 1;
/// web1's overlay address (vf0).
pub const WEB1: &str = "192.168.10.11";
/// web2's overlay address (vf1, and its shadow on vf2).
pub const WEB2: &str = "192.168.10.12";
/// db1's overlay address (remote).
pub const DB1: &str = "192.168.10.21";
/// This NIC's substrate address.
pub const LOCAL: &str = "10.0.0.1";
/// db1's host.
pub const PROD_HOST: &str = "10.0.0.2";
/// The shadow host.
pub const SHADOW_HOST: &str = "10.0.0.3";
/// The collector (analysis node).
pub const COLLECTOR: &str = "10.0.0.50";

/// A frame that left the NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Egress port.
    pub port: Port,
    /// Mirror copy (mirror queue) or production.
    pub mirror: bool,
    /// Session of a copy or redirected frame.
    pub session: Option<u16>,
    /// Start of transmission (ps).
    pub start_ps: u64,
    /// Ingress of the frame it came from (ps).
    pub ingress_ps: u64,
    /// Packet id.
    pub packet: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Collects everything the NIC sends.
#[derive(Default)]
pub struct Collect(pub Vec<Sent>);

impl Sink for Collect {
    fn transmit(&mut self, d: &Departure, bytes: &[u8]) {
        self.0.push(Sent {
            port: d.frame.port(),
            mirror: d.frame.queue() == Queue::Mirror,
            session: d.frame.session(),
            start_ps: d.start_ps,
            ingress_ps: d.ingress_ps,
            packet: d.packet,
            bytes: bytes.to_vec(),
        });
    }
}

/// The simulated NIC with the lab topology.
pub struct Lab {
    /// The driver over the simulated NIC.
    pub nic: Nic<SimDevice>,
    /// Simulated time of the next frame (ps).
    pub now_ps: u64,
}

fn v4(s: &str) -> Ipv4Addr {
    match ip(s) {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("{s} is not IPv4"),
    }
}

/// A mirror filter matching everything of `vport` in `direction`, to the lab session.
pub fn mirror_all(vport: u16, direction: DirectionMatch) -> MirrorFilter {
    MirrorFilter {
        matches: RuleMatch {
            scope: Some(vport as u32),
            direction,
            ..RuleMatch::ANY
        },
        action: MirrorAction {
            priority: 10,
            verdict: MirrorVerdict::Mirror,
            rule_id: 100 + vport as u32,
            session: SESSION,
            truncate: None,
            sample_one_in: 1,
        },
    }
}

/// An ACL rule.
pub fn acl(priority: u16, verdict: Verdict, rule_id: u32, matches: RuleMatch) -> AclRule {
    AclRule {
        matches,
        action: AclAction {
            priority,
            verdict,
            rule_id,
        },
    }
}

/// A rule match on protocol and destination port range in the production VNI.
pub fn match_port(protocol: u8, lo: u16, hi: u16) -> RuleMatch {
    RuleMatch {
        scope: Some(PROD_VNI),
        protocol: Some(protocol),
        dport: PortRange::new(lo, hi).expect("lo <= hi"),
        family: Family::Any,
        ..RuleMatch::ANY
    }
}

impl Lab {
    /// The lab with the default timing, mirroring everything vf0 sends and receives.
    pub fn new() -> Lab {
        Lab::with_timing(Timing::DEFAULT)
    }

    /// The lab with a given timing.
    pub fn with_timing(timing: Timing) -> Lab {
        let model = NicModel::new(timing).expect("default timing is valid");
        let nic = Nic::open(SimDevice::new(model)).expect("the simulated NIC opens");
        let mut lab = Lab { nic, now_ps: 0 };
        lab.program();
        lab
    }

    /// Resets the NIC (tables, sessions, counters, configuration, queues) and programs the
    /// lab topology again: a fresh lab without building a new model, which is much cheaper
    /// (the model allocates its full-size tables). Simulated time keeps running.
    pub fn restart(&mut self) {
        self.program();
    }

    fn program(&mut self) {
        let nic = &mut self.nic;
        nic.reset().expect("reset");
        nic.configure_port(&PortConfig {
            local_mac: Mac(mac(1)),
            local_ipv4: Some(v4(LOCAL)),
            ..PortConfig::default()
        })
        .expect("port config");
        nic.set_enabled(true, false).expect("enable");
        for (vni, shadow) in [(PROD_VNI, false), (SHADOW_VNI, true)] {
            nic.write_vni(
                vni,
                &VniEntry {
                    shadow,
                    miss_to_host: !shadow,
                    default_deny_to_vm: false,
                    default_deny_from_vm: false,
                    production_vni: shadow.then_some(PROD_VNI),
                },
            )
            .expect("vni");
        }
        for (port, vni, last) in [
            (0u16, PROD_VNI, 0x11),
            (1, PROD_VNI, 0x12),
            (2, SHADOW_VNI, 0x12),
        ] {
            nic.write_vport(
                port,
                &VportEntry {
                    vni,
                    mac: Mac(mac(last)),
                    enabled: true,
                },
            )
            .expect("vport");
        }
        let local = |vport: u16, shadow: bool| MapValue {
            substrate_ip: ip(LOCAL),
            substrate_mac: Mac(mac(1)),
            local_vport: Some(vport),
            shadow,
        };
        let remote = |host: &str, last: u8, shadow: bool| MapValue {
            substrate_ip: ip(host),
            substrate_mac: Mac(mac(last)),
            local_vport: None,
            shadow,
        };
        let entries = [
            (PROD_VNI, WEB1, local(0, false)),
            (PROD_VNI, WEB2, local(1, false)),
            (PROD_VNI, DB1, remote(PROD_HOST, 2, false)),
            (SHADOW_VNI, WEB2, local(2, true)),
            (SHADOW_VNI, WEB1, remote(SHADOW_HOST, 3, true)),
            (SHADOW_VNI, DB1, remote(SHADOW_HOST, 3, true)),
        ];
        for (vni, addr, value) in entries {
            nic.write_map(&MapKey { vni, ip: ip(addr) }, &value)
                .expect("map");
        }
        for addr in [WEB1, DB1] {
            nic.write_shadow_map(
                &ShadowMapKey {
                    session: SESSION,
                    vni: PROD_VNI,
                    ip: ip(addr),
                },
                &ShadowMapValue {
                    substrate_ip: ip(SHADOW_HOST),
                    substrate_mac: Mac(mac(3)),
                    shadow_vni: SHADOW_VNI,
                },
            )
            .expect("shadow map");
        }
        nic.configure_session(SESSION, &Lab::session(Encap::Geneve, Mode::Mirror))
            .expect("session");
        nic.write_mirror_filter(0, &mirror_all(0, DirectionMatch::Both))
            .expect("mirror filter");
    }

    /// The lab's session configuration with a given encapsulation and mode.
    pub fn session(encap: Encap, mode: Mode) -> MirrorSession {
        MirrorSession {
            enabled: true,
            encap,
            mode,
            shadow_vni: SHADOW_VNI,
            collector_ip: ip(COLLECTOR),
            collector_mac: Mac(mac(0x50)),
            policer_mbps: 0,
            policer_burst: 0,
        }
    }

    /// Sends one frame into `port` a microsecond after the previous one and returns
    /// everything that left because of it.
    pub fn send(&mut self, port: Port, frame: &[u8]) -> Vec<Sent> {
        self.now_ps += 1_000_000;
        let mut sink = Collect::default();
        let model = &mut *self.nic.device().model();
        model.receive(port, frame, self.now_ps, &mut sink);
        model.finish(&mut sink);
        sink.0
    }

    /// The model, for feeding ports directly.
    pub fn model(&self) -> std::cell::RefMut<'_, NicModel> {
        self.nic.device().model()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}
