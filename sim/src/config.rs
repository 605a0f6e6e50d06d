//! The pipeline's running configuration, latched from the CTRL and PORT blocks by
//! `CTRL.CMD = APPLY_CONFIG` (and restored to reset values by `RESET`).

use shadownet_hw::{DeviceView, layout::Mac};
use shadownet_wire::parse::ParseConfig;

/// What the pipeline runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningConfig {
    /// Forward traffic at all.
    pub enabled: bool,
    /// Emit trace events.
    pub trace: bool,
    /// Substrate MAC of this NIC.
    pub local_mac: Mac,
    /// Substrate IPv4 address (wire form, IPv4-mapped), if any.
    pub local_ipv4: Option<[u8; 16]>,
    /// Substrate IPv6 address, if any.
    pub local_ipv6: Option<[u8; 16]>,
    /// Tunnel ports.
    pub parse: ParseConfig,
    /// Largest frame the uplink transmits.
    pub uplink_mtu: u32,
}

impl RunningConfig {
    /// The configuration after reset: disabled, no addresses, IANA tunnel ports, MTU 9216.
    pub const RESET: RunningConfig = RunningConfig {
        enabled: false,
        trace: false,
        local_mac: Mac([0; 6]),
        local_ipv4: None,
        local_ipv6: None,
        parse: ParseConfig {
            vxlan_port: 4789,
            geneve_port: 6081,
        },
        uplink_mtu: 9216,
    };

    /// Latches the configuration the host staged in the registers.
    pub fn latch(regs: &DeviceView<'_>) -> RunningConfig {
        let ctrl = regs.ctrl().config().read();
        let port = regs.port();
        let lo = port.local_mac_lo().read().bits().to_le_bytes();
        let hi = port.local_mac_hi().read().bits().to_le_bytes();
        let v4 = port.local_ipv4().read().bits().to_le_bytes();
        let mut v6 = [0u8; 16];
        for (i, chunk) in v6.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&port.local_ipv6(i).read().bits().to_le_bytes());
        }
        let tunnels = port.tunnel_ports().read();
        RunningConfig {
            enabled: ctrl.enable().bit(),
            trace: ctrl.trace().bit(),
            local_mac: Mac([lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]]),
            local_ipv4: (v4 != [0; 4]).then(|| {
                let mut m = [0u8; 16];
                m[10] = 0xFF;
                m[11] = 0xFF;
                m[12..].copy_from_slice(&v4);
                m
            }),
            local_ipv6: (v6 != [0; 16]).then_some(v6),
            parse: ParseConfig {
                vxlan_port: tunnels.vxlan().bits(),
                geneve_port: tunnels.geneve().bits(),
            },
            uplink_mtu: port.uplink_mtu().read().bits(),
        }
    }

    /// The local substrate address of a family, as an address.
    #[inline]
    pub fn local_addr_for(&self, v4: bool) -> Option<std::net::IpAddr> {
        let bytes = if v4 { self.local_ipv4 } else { self.local_ipv6 }?;
        Some(if v4 {
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                bytes[12], bytes[13], bytes[14], bytes[15],
            ))
        } else {
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bytes))
        })
    }

    /// Whether `dst` (wire form) is one of this NIC's substrate addresses.
    pub fn is_local(&self, dst: &[u8; 16]) -> bool {
        self.local_ipv4.as_ref() == Some(dst) || self.local_ipv6.as_ref() == Some(dst)
    }
}
