//! Mirror filter and map entries the behaviour tests program on top of the lab.

use shadownet_hw::layout::{
    Mac,
    map::{MapKey, MapValue},
    mirror_filter::{MirrorAction, MirrorFilter, MirrorVerdict},
    rule::RuleMatch,
};

use crate::{
    lab::{LOCAL, SESSION},
    packet::{ip, mac},
};

/// A mirror filter on `vport` (its scope is set to `vport`) to the lab session, copying every
/// matching packet whole.
pub fn mirror_rule(
    vport: u16,
    priority: u16,
    verdict: MirrorVerdict,
    rule_id: u32,
    matches: RuleMatch,
) -> MirrorFilter {
    MirrorFilter {
        matches: RuleMatch {
            scope: Some(vport as u32),
            ..matches
        },
        action: MirrorAction {
            priority,
            verdict,
            rule_id,
            session: SESSION,
            truncate: None,
            sample_one_in: 1,
        },
    }
}

/// A map key.
pub fn map_key(vni: u32, addr: &str) -> MapKey {
    MapKey { vni, ip: ip(addr) }
}

/// A map entry for a VM on this NIC's VF `vport`.
pub fn local_vm(vport: u16, shadow: bool) -> MapValue {
    MapValue {
        substrate_ip: ip(LOCAL),
        substrate_mac: Mac(mac(1)),
        local_vport: Some(vport),
        shadow,
    }
}

/// A map entry for a VM behind substrate address `host` (MAC 02:..:`last`).
pub fn remote_vm(host: &str, last: u8, shadow: bool) -> MapValue {
    MapValue {
        substrate_ip: ip(host),
        substrate_mac: Mac(mac(last)),
        local_vport: None,
        shadow,
    }
}
