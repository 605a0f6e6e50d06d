//! One-line descriptions of table keys and entries, for drift reports.

use shadownet_hw::layout::{
    PortRange,
    acl::{AclRule, Verdict},
    map::{MapKey, MapValue},
    mirror_filter::{MirrorFilter, MirrorVerdict},
    rule::{DirectionMatch, Family, RuleMatch},
    session::{Encap, MirrorSession, Mode},
    shadow_map::{ShadowMapKey, ShadowMapValue},
    vni::VniEntry,
    vport::VportEntry,
};

/// A key or an entry in words an operator reads.
pub trait Describe {
    /// One line, no trailing newline.
    fn describe(&self) -> String;
}

impl Describe for u32 {
    fn describe(&self) -> String {
        self.to_string()
    }
}

impl Describe for u16 {
    fn describe(&self) -> String {
        self.to_string()
    }
}

impl Describe for VniEntry {
    fn describe(&self) -> String {
        let kind = match self.production_vni {
            Some(p) if self.shadow => format!("shadow of {p}"),
            _ => "production".to_string(),
        };
        let verdict = |deny: bool| if deny { "deny" } else { "allow" };
        format!(
            "{kind}, misses to {}, default to_vm {}, from_vm {}",
            if self.miss_to_host { "host" } else { "drop" },
            verdict(self.default_deny_to_vm),
            verdict(self.default_deny_from_vm)
        )
    }
}

impl Describe for VportEntry {
    fn describe(&self) -> String {
        format!(
            "vni {} mac {}{}",
            self.vni,
            self.mac,
            if self.enabled { "" } else { " (disabled)" }
        )
    }
}

impl Describe for MapKey {
    fn describe(&self) -> String {
        format!("vni {} {}", self.vni, self.ip)
    }
}

impl Describe for MapValue {
    fn describe(&self) -> String {
        let mut s = match self.local_vport {
            Some(p) => format!("local vf{p}"),
            None => format!("host {} via {}", self.substrate_ip, self.substrate_mac),
        };
        if self.local_vport.is_some() && !self.substrate_ip.is_unspecified() {
            s.push_str(&format!(
                " (host {} via {})",
                self.substrate_ip, self.substrate_mac
            ));
        }
        if self.shadow {
            s.push_str(", shadow");
        }
        s
    }
}

impl Describe for ShadowMapKey {
    fn describe(&self) -> String {
        format!("session {} vni {} {}", self.session, self.vni, self.ip)
    }
}

impl Describe for ShadowMapValue {
    fn describe(&self) -> String {
        format!(
            "shadow vni {} host {} via {}",
            self.shadow_vni, self.substrate_ip, self.substrate_mac
        )
    }
}

impl Describe for MirrorSession {
    fn describe(&self) -> String {
        format!(
            "{}{} {} to shadow vni {}, collector {} via {}, policer {}",
            if self.enabled { "" } else { "disabled " },
            match self.encap {
                Encap::Vxlan => "vxlan",
                Encap::Geneve => "geneve",
            },
            match self.mode {
                Mode::Mirror => "mirror",
                Mode::Redirect => "redirect",
            },
            self.shadow_vni,
            self.collector_ip,
            self.collector_mac,
            if self.policer_mbps == 0 {
                "off".to_string()
            } else {
                format!("{} Mbit/s burst {}", self.policer_mbps, self.policer_burst)
            }
        )
    }
}

fn ports(r: PortRange) -> String {
    if r == PortRange::ANY {
        "any".to_string()
    } else {
        r.to_string()
    }
}

fn matches(m: &RuleMatch, scope: &str) -> String {
    let prefix = |p: Option<shadownet_hw::layout::Prefix>| {
        p.map(|p| p.to_string())
            .unwrap_or_else(|| "any".to_string())
    };
    format!(
        "{scope} {} {}{} proto {}{} src {} dst {} sport {} dport {}",
        m.scope
            .map(|s| s.to_string())
            .unwrap_or_else(|| "any".to_string()),
        match m.direction {
            DirectionMatch::ToVm => "to_vm",
            DirectionMatch::FromVm => "from_vm",
            DirectionMatch::Both => "both",
        },
        match m.family {
            Family::Any => "",
            Family::V4 => " ipv4",
            Family::V6 => " ipv6",
        },
        m.protocol
            .map(|p| p.to_string())
            .unwrap_or_else(|| "any".to_string()),
        if m.tcp_syn { " syn" } else { "" },
        prefix(m.src),
        prefix(m.dst),
        ports(m.sport),
        ports(m.dport),
    )
}

impl Describe for AclRule {
    fn describe(&self) -> String {
        format!(
            "{} priority {} rule {}: {}",
            match self.action.verdict {
                Verdict::Allow => "allow".to_string(),
                Verdict::Deny => "deny".to_string(),
                Verdict::Police { rate_pps, burst } => {
                    format!("police {rate_pps} pps burst {burst}")
                }
            },
            self.action.priority,
            self.action.rule_id,
            matches(&self.matches, "vni")
        )
    }
}

impl Describe for MirrorFilter {
    fn describe(&self) -> String {
        let a = &self.action;
        let mut s = match a.verdict {
            MirrorVerdict::Mirror => format!("mirror to session {}", a.session),
            MirrorVerdict::DoNotMirror => "skip".to_string(),
        };
        s.push_str(&format!(" priority {} rule {}", a.priority, a.rule_id));
        if a.sample_one_in > 1 {
            s.push_str(&format!(" 1/{}", a.sample_one_in));
        }
        if let Some(t) = a.truncate {
            s.push_str(&format!(" truncate {t}"));
        }
        s.push_str(": ");
        s.push_str(&matches(&self.matches, "vport"));
        s
    }
}
