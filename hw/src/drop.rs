//! Drop reasons. Every frame the NIC receives leaves on a port or is dropped with exactly one
//! of these; every copy a mirror filter asks for is transmitted or dropped with one of the
//! `MIRROR_*` reasons. Each reason has a counter (`counters::drop_reason`).

/// Why a frame or a mirror copy was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// `CTRL.CONFIG.ENABLE` is 0.
    DeviceDisabled = 1,
    /// The port could not present the frame as Ethernet (a capture of another link type).
    UnsupportedLinkType = 2,
    /// Ethernet or VLAN header truncated, or more than two VLAN tags.
    MalformedL2 = 3,
    /// IPv4/IPv6/ARP header truncated or inconsistent (lengths, version, extension headers).
    MalformedL3 = 4,
    /// TCP/UDP/ICMP header truncated or inconsistent.
    MalformedL4 = 5,
    /// A VXLAN or Geneve packet from the uplink to a tunnel port is malformed, or its inner
    /// frame is. (Frames from VMs and the host are never parsed as tunnels.)
    MalformedTunnel = 6,
    /// Frame received on a VF whose VPORT entry is missing or disabled, or delivered to a
    /// local VF that is.
    VportDisabled = 7,
    /// The VNI (of a VF's binding or of a decapsulated frame) is not in the VNI table.
    VniUnknown = 8,
    /// An ACL rule with verdict deny matched.
    AclDeny = 9,
    /// No ACL rule matched and the network's default for the direction is deny.
    AclDefaultDeny = 10,
    /// The destination is not in the map and the network does not send misses to the host.
    MapMiss = 11,
    /// A packet would cross between a shadow network and production (a shadow's packet toward
    /// a non-shadow destination, or the reverse), or a shadow's frame would take the standard
    /// path to the host (a shadow VM's non-IP frame).
    ShadowIsolation = 12,
    /// A decapsulated frame's destination is not a VM behind this NIC, or its inner frame is
    /// neither IP nor ARP (there is no destination to deliver it to).
    NotLocal = 13,
    /// The destination vport of a decapsulated or VF-to-VF frame belongs to another VNI.
    VniMismatch = 14,
    /// The NIC has no substrate address of the family the destination needs.
    NoSubstrateAddress = 15,
    /// The encapsulated frame exceeds `PORT.UPLINK_MTU`.
    MtuExceeded = 16,
    /// The port's receive FIFO overflowed while the pipeline was busy.
    RxFifoOverflow = 17,
    /// The egress port's primary queue was full.
    PrimaryQueueFull = 18,
    /// A tunnel payload other than Ethernet (Geneve protocol type not 0x6558).
    UnsupportedTunnelPayload = 19,
    /// A release (Geneve, shadow option flag RELEASED) that did not come from the substrate
    /// address the NIC redirects that session's frames for its destination to, or whose inner
    /// frame is not IP (only IP frames are redirected).
    ReleaseUnauthorized = 20,
    /// A release naming a session that is not an enabled redirect-mode session.
    ReleaseNotRedirect = 21,
    /// An ACL rule with verdict police matched and its token bucket was empty.
    AclPoliced = 22,
    /// The mirror filter names a disabled session.
    MirrorSessionDisabled = 32,
    /// The session's policer had no tokens for the copy.
    MirrorPoliced = 33,
    /// The egress port's mirror queue was full.
    MirrorQueueFull = 34,
    /// The copy's wire time exceeds `Timing::mirror_max_wire_cycles` (51 cycles: 2,550 wire
    /// bytes at 100 Gbit/s by default), so sending it could delay production (see the timing
    /// spec); truncate copies to avoid this.
    MirrorOversize = 35,
    /// The encapsulated copy exceeds `PORT.UPLINK_MTU`.
    MirrorMtuExceeded = 36,
    /// The NIC has no substrate address of the family the copy's target (a shadow node or the
    /// collector) needs.
    MirrorNoSubstrateAddress = 37,
}

impl DropReason {
    /// Every reason, in code order.
    pub const ALL: [DropReason; 28] = [
        DropReason::DeviceDisabled,
        DropReason::UnsupportedLinkType,
        DropReason::MalformedL2,
        DropReason::MalformedL3,
        DropReason::MalformedL4,
        DropReason::MalformedTunnel,
        DropReason::VportDisabled,
        DropReason::VniUnknown,
        DropReason::AclDeny,
        DropReason::AclDefaultDeny,
        DropReason::MapMiss,
        DropReason::ShadowIsolation,
        DropReason::NotLocal,
        DropReason::VniMismatch,
        DropReason::NoSubstrateAddress,
        DropReason::MtuExceeded,
        DropReason::RxFifoOverflow,
        DropReason::PrimaryQueueFull,
        DropReason::UnsupportedTunnelPayload,
        DropReason::ReleaseUnauthorized,
        DropReason::ReleaseNotRedirect,
        DropReason::AclPoliced,
        DropReason::MirrorSessionDisabled,
        DropReason::MirrorPoliced,
        DropReason::MirrorQueueFull,
        DropReason::MirrorOversize,
        DropReason::MirrorMtuExceeded,
        DropReason::MirrorNoSubstrateAddress,
    ];

    /// Number of reason codes the counter block reserves (codes 0..64).
    pub const CODES: usize = 64;

    /// The reason's code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The reason with this code.
    pub fn from_code(code: u8) -> Option<DropReason> {
        DropReason::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Whether the reason applies to mirror copies (never to production frames).
    pub const fn is_mirror(self) -> bool {
        self as u8 >= 32
    }

    /// snake_case name used in summaries and traces.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::DeviceDisabled => "device_disabled",
            DropReason::UnsupportedLinkType => "unsupported_link_type",
            DropReason::MalformedL2 => "malformed_l2",
            DropReason::MalformedL3 => "malformed_l3",
            DropReason::MalformedL4 => "malformed_l4",
            DropReason::MalformedTunnel => "malformed_tunnel",
            DropReason::VportDisabled => "vport_disabled",
            DropReason::VniUnknown => "vni_unknown",
            DropReason::AclDeny => "acl_deny",
            DropReason::AclDefaultDeny => "acl_default_deny",
            DropReason::MapMiss => "map_miss",
            DropReason::ShadowIsolation => "shadow_isolation",
            DropReason::NotLocal => "not_local",
            DropReason::VniMismatch => "vni_mismatch",
            DropReason::NoSubstrateAddress => "no_substrate_address",
            DropReason::MtuExceeded => "mtu_exceeded",
            DropReason::RxFifoOverflow => "rx_fifo_overflow",
            DropReason::PrimaryQueueFull => "primary_queue_full",
            DropReason::UnsupportedTunnelPayload => "unsupported_tunnel_payload",
            DropReason::ReleaseUnauthorized => "release_unauthorized",
            DropReason::ReleaseNotRedirect => "release_not_redirect",
            DropReason::AclPoliced => "acl_policed",
            DropReason::MirrorSessionDisabled => "mirror_session_disabled",
            DropReason::MirrorPoliced => "mirror_policed",
            DropReason::MirrorQueueFull => "mirror_queue_full",
            DropReason::MirrorOversize => "mirror_oversize",
            DropReason::MirrorMtuExceeded => "mirror_mtu_exceeded",
            DropReason::MirrorNoSubstrateAddress => "mirror_no_substrate_address",
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_in_range_and_round_trip() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert!((r.code() as usize) < DropReason::CODES);
            assert_eq!(DropReason::from_code(r.code()), Some(*r));
            for other in &DropReason::ALL[i + 1..] {
                assert_ne!(r.code(), other.code());
                assert_ne!(r.name(), other.name());
            }
            assert_eq!(r.is_mirror(), r.name().starts_with("mirror_"));
        }
        assert_eq!(DropReason::from_code(0), None);
    }
}
