//! Builds test frames byte by byte, with correct lengths and checksums.

use std::net::IpAddr;

use shadownet_wire::checksum;

/// A frame under construction: Ethernet, optional VLAN tags, IP, L4, payload.
#[derive(Clone, Debug)]
pub struct Builder {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlans: Vec<(u16, u16)>,
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
    payload: Vec<u8>,
    ttl: u8,
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Icmp { ty: u8, code: u8 },
    Raw(u8),
}

/// A MAC address from its last byte (02:00:00:00:00:xx).
pub fn mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

/// Parses an address literal.
pub fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|_| panic!("bad address literal {s}"))
}

impl Builder {
    /// A TCP segment.
    pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> Builder {
        Builder::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags: 0x02,
            },
        )
    }

    /// A UDP datagram.
    pub fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Builder {
        Builder::new(src, dst, L4::Udp { sport, dport })
    }

    /// An ICMP (or ICMPv6) echo request.
    pub fn icmp_echo(src: &str, dst: &str) -> Builder {
        let v6 = ip(src).is_ipv6();
        Builder::new(
            src,
            dst,
            L4::Icmp {
                ty: if v6 { 128 } else { 8 },
                code: 0,
            },
        )
    }

    /// A packet of another IP protocol with an opaque payload.
    pub fn raw(src: &str, dst: &str, protocol: u8) -> Builder {
        Builder::new(src, dst, L4::Raw(protocol))
    }

    fn new(src: &str, dst: &str, l4: L4) -> Builder {
        Builder {
            src_mac: mac(0xaa),
            dst_mac: mac(0xbb),
            vlans: Vec::new(),
            src: ip(src),
            dst: ip(dst),
            l4,
            payload: Vec::new(),
            ttl: 64,
        }
    }

    /// Sets the MAC addresses.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Builder {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Adds a VLAN tag (TPID 0x8100 or 0x88A8), outermost first.
    pub fn vlan(mut self, tpid: u16, id: u16) -> Builder {
        self.vlans.push((tpid, id));
        self
    }

    /// Sets TCP flags.
    pub fn flags(mut self, f: u8) -> Builder {
        if let L4::Tcp { flags, .. } = &mut self.l4 {
            *flags = f;
        }
        self
    }

    /// Appends `n` payload bytes (a recognisable pattern).
    pub fn payload_len(mut self, n: usize) -> Builder {
        self.payload = (0..n).map(|i| (i % 251) as u8).collect();
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, p: &[u8]) -> Builder {
        self.payload = p.to_vec();
        self
    }

    /// Pads or fills the payload so the whole frame is `len` bytes (without FCS).
    pub fn frame_len(self, len: usize) -> Builder {
        let overhead = self.clone().payload(&[]).build().len();
        let n = len.saturating_sub(overhead);
        self.payload_len(n)
    }

    fn l4_bytes(&self) -> (u8, Vec<u8>) {
        let mut seg = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&1u32.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&65535u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Icmp { ty, code } => vec![ty, code, 0, 0, 0, 1, 0, 1],
            L4::Raw(_) => Vec::new(),
        };
        seg.extend_from_slice(&self.payload);
        let proto = match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if self.src.is_ipv6() {
                    58
                } else {
                    1
                }
            }
            L4::Raw(p) => p,
        };
        let at = match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Icmp { .. } => Some(2),
            L4::Raw(_) => None,
        };
        if let Some(at) = at {
            let pseudo = match self.l4 {
                L4::Icmp { .. } if self.src.is_ipv4() => None,
                _ => checksum::pseudo_header(&self.src, &self.dst, proto, seg.len() as u32),
            };
            let sum = match pseudo {
                Some(p) => checksum::combine(&[p, checksum::data(&seg)]),
                None => checksum::data(&seg),
            };
            let mut c = !sum;
            if c == 0 && matches!(self.l4, L4::Udp { .. }) {
                c = 0xFFFF;
            }
            seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        (proto, seg)
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let (proto, seg) = self.l4_bytes();
        let mut f = Vec::with_capacity(64 + seg.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for &(tpid, id) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut h = [0u8; 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
                h[6] = 0x40;
                h[8] = self.ttl;
                h[9] = proto;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let c = !checksum::data(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86DDu16.to_be_bytes());
                let mut h = [0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&(seg.len() as u16).to_be_bytes());
                h[6] = proto;
                h[7] = self.ttl;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                f.extend_from_slice(&h);
            }
            _ => panic!("source and destination of different families"),
        }
        f.extend_from_slice(&seg);
        f
    }
}

/// An ARP request from `sender` for `target`.
pub fn arp_request(src_mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xFF; 6]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// Wraps `inner` in VXLAN from `src` to `dst` (IPv4 substrate), as a remote host would.
pub fn vxlan(src: &str, dst: &str, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    Builder::udp(src, dst, 50_000, 4789)
        .macs(mac(2), mac(1))
        .payload(&payload)
        .build()
}

/// Wraps `inner` (Ethernet) in Geneve from `src` to `dst` (IPv4 substrate), no options, as a
/// remote host would.
pub fn geneve(src: &str, dst: &str, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 0, 0x65, 0x58];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    Builder::udp(src, dst, 50_000, 6081)
        .macs(mac(2), mac(1))
        .payload(&payload)
        .build()
}
