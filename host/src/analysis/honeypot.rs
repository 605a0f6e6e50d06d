//! Honeypot nodes for a shadow network (R7): decoy addresses that answer probes inside the
//! shadow only, so an attacker replayed or mirrored into the shadow meets something that
//! looks alive and shows what it would do next.
//!
//! A [`Honeypot`] is one decoy host (an IPv4 address and a MAC) with a set of [`Service`]s.
//! It takes the shadow's decapsulated frames and returns the frames a real host would send
//! back:
//!
//! - ARP requests for its address get a reply; ICMP echo requests get an echo reply;
//! - a TCP SYN to an open port gets a SYN-ACK, to a closed port a RST;
//! - a completed handshake opens a connection that acknowledges data, sends the service's
//!   banner (at once for services that speak first, such as SSH, otherwise after the first
//!   request) and closes on FIN or RST;
//! - UDP to an open port gets the banner back, to a closed port an ICMP port unreachable.
//!
//! Every exchange is recorded as an [`Interaction`]. The SYN-ACK's sequence number is a
//! keyed hash of the connection (a SYN cookie), so a SYN flood against the honeypot costs
//! no state; connections are kept only after the handshake completes, in a bounded table.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use shadownet_wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetRepr, IcmpPacket, Ipv4Packet,
    Ipv4Repr, L3, L4, ParseConfig, TcpPacket, TcpRepr, UdpPacket, UdpRepr, arp, ethernet,
    ethertype, icmp, ip_protocol, ipv4, parse, tcp, udp,
};

/// Established connections kept at most; the oldest is dropped when a new one would exceed it.
pub const MAX_CONNECTIONS: usize = 4096;
/// Bytes of a request kept in an [`Interaction`].
pub const KEPT_PAYLOAD: usize = 64;
/// Largest banner accepted: it must fit one segment on a 1500-byte MTU.
pub const MAX_BANNER: usize = 1400;

/// Errors in a honeypot's specification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoneypotError {
    /// Two services on the same transport and port.
    #[error("service {transport:?}/{port} is listed twice")]
    DuplicateService {
        /// The transport.
        transport: Transport,
        /// The port.
        port: u16,
    },
    /// Port 0 cannot be listened on.
    #[error("service {transport:?}/0: port 0 is not a port")]
    PortZero {
        /// The transport.
        transport: Transport,
    },
    /// A banner that does not fit one segment.
    #[error("service {transport:?}/{port}: banner is {len} bytes, at most {MAX_BANNER}")]
    BannerTooLong {
        /// The transport.
        transport: Transport,
        /// The port.
        port: u16,
        /// The banner's length.
        len: usize,
    },
    /// The address cannot be a host's.
    #[error("{0} cannot be a honeypot's address (unspecified, broadcast or multicast)")]
    BadAddress(Ipv4Addr),
}

/// A transport protocol a service listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One listening service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its transport.
    pub transport: Transport,
    /// Its port.
    pub port: u16,
    /// What it says: sent on connection (`speaks_first`) or in answer to the first request.
    pub banner: Vec<u8>,
    /// Whether the server talks first (SSH, SMTP, FTP) rather than answering (HTTP).
    pub speaks_first: bool,
}

impl Service {
    /// A TCP service that answers the first request with `banner`.
    pub fn tcp(port: u16, banner: &[u8]) -> Service {
        Service {
            transport: Transport::Tcp,
            port,
            banner: banner.to_vec(),
            speaks_first: false,
        }
    }

    /// A TCP service that greets with `banner` as soon as the handshake completes.
    pub fn tcp_greeting(port: u16, banner: &[u8]) -> Service {
        Service {
            speaks_first: true,
            ..Service::tcp(port, banner)
        }
    }

    /// A UDP service that answers every datagram with `banner`.
    pub fn udp(port: u16, banner: &[u8]) -> Service {
        Service {
            transport: Transport::Udp,
            port,
            banner: banner.to_vec(),
            speaks_first: false,
        }
    }
}

/// What the well-known service on `transport`/`port` says and whether it speaks first: the
/// default of a honeypot service configured without a banner. `None` for ports with no
/// well-known banner (the service then listens and acknowledges, and says nothing).
pub fn well_known_banner(transport: Transport, port: u16) -> Option<(&'static [u8], bool)> {
    const HTTP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n";
    Some(match (transport, port) {
        (Transport::Tcp, 21) => (b"220 (vsFTPd 3.0.3)\r\n", true),
        (Transport::Tcp, 22) => (b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", true),
        (Transport::Tcp, 23) => (b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27", true),
        (Transport::Tcp, 25 | 587) => (b"220 mail.internal ESMTP Postfix (Debian/GNU)\r\n", true),
        (Transport::Tcp, 110) => (b"+OK Dovecot (Debian) ready.\r\n", true),
        (Transport::Tcp, 143) => (b"* OK [CAPABILITY IMAP4rev1] Dovecot (Debian) ready.\r\n", true),
        (Transport::Tcp, 80 | 8000 | 8080 | 8443 | 443) => (HTTP, false),
        (Transport::Tcp, 3306) => (
            b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00\x41\x42\x43\x44\x45\x46\x47\x48\x00\xff\xf7\x2d\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x49\x4a\x4b\x4c\x4d\x4e\x4f\x50\x51\x52\x53\x54\x00caching_sha2_password\x00",
            true,
        ),
        (Transport::Tcp, 5432) => (b"N", false),
        (Transport::Tcp, 6379) => (b"-NOAUTH Authentication required.\r\n", false),
        _ => return None,
    })
}

/// A decoy host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoneypotSpec {
    /// Its overlay address in the shadow.
    pub ip: Ipv4Addr,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// What listens on it.
    pub services: Vec<Service>,
    /// Keys the SYN cookies; different honeypots should use different keys.
    pub cookie_key: u64,
}

/// What happened in one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InteractionKind {
    /// ARP request for the honeypot's address.
    ArpRequest,
    /// ICMP echo request.
    Ping,
    /// TCP SYN; `open` says whether the port listens (SYN-ACK) or not (RST).
    SynProbe {
        /// Whether the port listens.
        open: bool,
    },
    /// A TCP segment that matched no connection and was not a SYN (answered with RST).
    StrayTcp,
    /// A handshake completed.
    Connected,
    /// Data on a connection or a UDP datagram; the first bytes are kept.
    Data {
        /// Payload length.
        len: usize,
        /// Its first [`KEPT_PAYLOAD`] bytes.
        head: Vec<u8>,
    },
    /// The peer closed (FIN) or reset (RST) a connection.
    Closed,
    /// A UDP datagram; `open` says whether the port listens.
    UdpProbe {
        /// Whether the port listens.
        open: bool,
    },
}

/// One exchange with the honeypot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// When the frame arrived (the caller's clock, in nanoseconds).
    pub at_ns: u64,
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// The peer's port (0 for ARP and ICMP).
    pub peer_port: u16,
    /// The honeypot's port (0 for ARP and ICMP).
    pub port: u16,
    /// The IP protocol (0 for ARP).
    pub protocol: u8,
    /// What happened.
    pub kind: InteractionKind,
}

/// Counters of a honeypot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoneypotStats {
    /// Frames handed to [`Honeypot::handle`].
    pub frames: u64,
    /// Frames not addressed to the honeypot (ignored).
    pub not_for_us: u64,
    /// Frames that did not parse, or were fragments or bad checksums (dropped).
    pub malformed: u64,
    /// Frames sent back.
    pub replies: u64,
    /// Established connections now.
    pub connections: u64,
    /// Connections dropped because the table was full.
    pub evicted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    peer: Ipv4Addr,
    peer_port: u16,
    port: u16,
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    /// Next sequence number we send.
    snd_nxt: u32,
    /// Next sequence number we expect.
    rcv_nxt: u32,
    /// Whether the banner has been sent.
    answered: bool,
    /// Insertion order, for eviction.
    serial: u64,
}

/// The addresses of the frame being answered.
struct Peer {
    mac: [u8; 6],
    ip: Ipv4Addr,
}

/// A decoy host answering frames.
#[derive(Debug)]
pub struct Honeypot {
    spec: HoneypotSpec,
    services: BTreeMap<(Transport, u16), Service>,
    conns: HashMap<ConnKey, Conn>,
    next_serial: u64,
    ident: u16,
    interactions: Vec<Interaction>,
    stats: HoneypotStats,
}

impl Honeypot {
    /// Checks the specification and builds the honeypot.
    pub fn new(spec: HoneypotSpec) -> Result<Honeypot, HoneypotError> {
        if spec.ip.is_unspecified() || spec.ip.is_broadcast() || spec.ip.is_multicast() {
            return Err(HoneypotError::BadAddress(spec.ip));
        }
        let mut services = BTreeMap::new();
        for s in &spec.services {
            if s.port == 0 {
                return Err(HoneypotError::PortZero {
                    transport: s.transport,
                });
            }
            if s.banner.len() > MAX_BANNER {
                return Err(HoneypotError::BannerTooLong {
                    transport: s.transport,
                    port: s.port,
                    len: s.banner.len(),
                });
            }
            if services.insert((s.transport, s.port), s.clone()).is_some() {
                return Err(HoneypotError::DuplicateService {
                    transport: s.transport,
                    port: s.port,
                });
            }
        }
        Ok(Honeypot {
            spec,
            services,
            conns: HashMap::new(),
            next_serial: 0,
            ident: 1,
            interactions: Vec::new(),
            stats: HoneypotStats::default(),
        })
    }

    /// The specification it was built from.
    pub fn spec(&self) -> &HoneypotSpec {
        &self.spec
    }

    /// Its counters.
    pub fn stats(&self) -> HoneypotStats {
        HoneypotStats {
            connections: self.conns.len() as u64,
            ..self.stats
        }
    }

    /// The interactions recorded so far.
    pub fn interactions(&self) -> &[Interaction] {
        &self.interactions
    }

    /// Takes the interactions recorded so far.
    pub fn take_interactions(&mut self) -> Vec<Interaction> {
        std::mem::take(&mut self.interactions)
    }

    /// Answers one frame: the frames to send back (none if it is not for the honeypot or
    /// needs no answer).
    pub fn handle(&mut self, frame: &[u8], at_ns: u64) -> Vec<Vec<u8>> {
        self.stats.frames += 1;
        let replies = self.answer(frame, at_ns);
        self.stats.replies += replies.len() as u64;
        replies
    }

    fn answer(&mut self, frame: &[u8], at_ns: u64) -> Vec<Vec<u8>> {
        // Tunnels are not followed: the honeypot sees the shadow's decapsulated frames.
        let cfg = ParseConfig {
            vxlan_port: 0,
            geneve_port: 0,
        };
        let Ok(h) = parse(frame, &cfg) else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        if h.vlan_count != 0 {
            // The shadow's access ports are untagged; a tagged frame is not addressed to us.
            self.stats.not_for_us += 1;
            return Vec::new();
        }
        let peer_mac = h.eth_src.0;
        match h.l3 {
            L3::Arp { op, target_ip, .. } => {
                if op != arp::operation::REQUEST || Ipv4Addr::from(target_ip) != self.spec.ip {
                    self.stats.not_for_us += 1;
                    return Vec::new();
                }
                self.arp_reply(frame, &h, at_ns)
            }
            L3::Ipv4 => {
                let (Some(IpAddr::V4(src)), Some(IpAddr::V4(dst))) = (h.src_ip(), h.dst_ip())
                else {
                    self.stats.malformed += 1;
                    return Vec::new();
                };
                // By address only: the overlay delivers by (VNI, address), and a mirrored
                // copy keeps the MAC production addressed it to (its gateway's, for an
                // address production does not have).
                if dst != self.spec.ip {
                    self.stats.not_for_us += 1;
                    return Vec::new();
                }
                if h.fragment != shadownet_wire::Fragment::None || h.has_ipv4_options {
                    // A real host would reassemble; a decoy does not need to, and answering a
                    // piece would be wrong.
                    self.stats.malformed += 1;
                    return Vec::new();
                }
                let end = (h.l3_offset as usize + h.ip_total_len as usize).min(frame.len());
                let l4 = &frame[h.l4_offset as usize..end];
                let peer = Peer {
                    mac: peer_mac,
                    ip: src,
                };
                match h.l4 {
                    L4::Icmp { ty, .. } if ty == icmp::v4::ECHO_REQUEST => {
                        self.echo_reply(&peer, l4, at_ns)
                    }
                    L4::Tcp { sport, dport, .. } => self.tcp(&peer, sport, dport, l4, at_ns),
                    L4::Udp { sport, dport } => {
                        let ip_packet = &frame[h.l3_offset as usize..end];
                        self.udp(&peer, sport, dport, l4, ip_packet, at_ns)
                    }
                    _ => Vec::new(),
                }
            }
            _ => {
                self.stats.not_for_us += 1;
                Vec::new()
            }
        }
    }

    fn record(
        &mut self,
        at_ns: u64,
        peer: Ipv4Addr,
        ports: (u16, u16),
        protocol: u8,
        kind: InteractionKind,
    ) {
        self.interactions.push(Interaction {
            at_ns,
            peer,
            peer_port: ports.0,
            port: ports.1,
            protocol,
            kind,
        });
    }

    fn arp_reply(&mut self, frame: &[u8], h: &shadownet_wire::Headers, at_ns: u64) -> Vec<Vec<u8>> {
        let Ok(req) =
            ArpPacket::new_checked(&frame[h.l3_offset as usize..]).and_then(|p| ArpRepr::parse(&p))
        else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        self.record(
            at_ns,
            req.source_protocol_addr,
            (0, 0),
            0,
            InteractionKind::ArpRequest,
        );
        let reply = ArpRepr {
            operation: arp::operation::REPLY,
            source_hardware_addr: EthernetAddress(self.spec.mac),
            source_protocol_addr: self.spec.ip,
            target_hardware_addr: req.source_hardware_addr,
            target_protocol_addr: req.source_protocol_addr,
        };
        let mut buf = vec![0u8; ethernet::HEADER_LEN + reply.buffer_len()];
        EthernetRepr {
            src_addr: EthernetAddress(self.spec.mac),
            dst_addr: req.source_hardware_addr,
            ethertype: ethertype::ARP,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        reply.emit(&mut ArpPacket::new_unchecked(
            &mut buf[ethernet::HEADER_LEN..],
        ));
        vec![buf]
    }

    fn echo_reply(&mut self, peer: &Peer, l4: &[u8], at_ns: u64) -> Vec<Vec<u8>> {
        let Ok(req) = IcmpPacket::new_checked(l4) else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        if !req.verify_checksum_v4() {
            self.stats.malformed += 1;
            return Vec::new();
        }
        self.record(
            at_ns,
            peer.ip,
            (0, 0),
            ip_protocol::ICMP,
            InteractionKind::Ping,
        );
        let mut msg = l4.to_vec();
        let mut p = IcmpPacket::new_unchecked(&mut msg[..]);
        p.set_msg_type(icmp::v4::ECHO_REPLY);
        p.set_msg_code(0);
        p.fill_checksum_v4();
        vec![self.ipv4_frame(peer, ip_protocol::ICMP, &msg)]
    }

    fn udp(
        &mut self,
        peer: &Peer,
        sport: u16,
        dport: u16,
        l4: &[u8],
        ip_packet: &[u8],
        at_ns: u64,
    ) -> Vec<Vec<u8>> {
        let Ok(dgram) = UdpPacket::new_checked(l4) else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        if !dgram.verify_checksum(&IpAddr::V4(peer.ip), &IpAddr::V4(self.spec.ip)) {
            self.stats.malformed += 1;
            return Vec::new();
        }
        let payload = dgram.payload();
        let service = self.services.get(&(Transport::Udp, dport)).cloned();
        self.record(
            at_ns,
            peer.ip,
            (sport, dport),
            ip_protocol::UDP,
            InteractionKind::UdpProbe {
                open: service.is_some(),
            },
        );
        if !payload.is_empty() {
            self.record(
                at_ns,
                peer.ip,
                (sport, dport),
                ip_protocol::UDP,
                InteractionKind::Data {
                    len: payload.len(),
                    head: payload[..payload.len().min(KEPT_PAYLOAD)].to_vec(),
                },
            );
        }
        match service {
            Some(s) => {
                let mut out = vec![0u8; udp::HEADER_LEN + s.banner.len()];
                let mut p = UdpPacket::new_unchecked(&mut out[..]);
                UdpRepr {
                    src_port: dport,
                    dst_port: sport,
                }
                .emit(&mut p, s.banner.len());
                p.payload_mut().copy_from_slice(&s.banner);
                let _ = p.fill_checksum(&IpAddr::V4(self.spec.ip), &IpAddr::V4(peer.ip));
                vec![self.ipv4_frame(peer, ip_protocol::UDP, &out)]
            }
            None => {
                // RFC 792: the unreachable message quotes the IP header and 8 bytes after it.
                let header_len = ipv4::HEADER_LEN; // options were refused above
                let quoted = &ip_packet[..ip_packet.len().min(header_len + 8)];
                let mut msg = vec![0u8; 8 + quoted.len()];
                msg[8..].copy_from_slice(quoted);
                let mut p = IcmpPacket::new_unchecked(&mut msg[..]);
                p.set_msg_type(icmp::v4::DEST_UNREACHABLE);
                p.set_msg_code(3); // port unreachable
                p.set_rest_of_header([0; 4]);
                p.fill_checksum_v4();
                vec![self.ipv4_frame(peer, ip_protocol::ICMP, &msg)]
            }
        }
    }

    fn tcp(&mut self, peer: &Peer, sport: u16, dport: u16, l4: &[u8], at_ns: u64) -> Vec<Vec<u8>> {
        let Ok(seg) = TcpPacket::new_checked(l4) else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        if !seg.verify_checksum(&IpAddr::V4(peer.ip), &IpAddr::V4(self.spec.ip)) {
            self.stats.malformed += 1;
            return Vec::new();
        }
        let header_len = seg.header_len() as usize;
        let payload = l4.get(header_len..).unwrap_or(&[]);
        let seq = seg.seq_number();
        let key = ConnKey {
            peer: peer.ip,
            peer_port: sport,
            port: dport,
        };
        let ports = (sport, dport);
        let proto = ip_protocol::TCP;
        let flags = seg.flags();
        let open = self.services.get(&(Transport::Tcp, dport)).cloned();

        if flags & tcp::flags::RST != 0 {
            if self.conns.remove(&key).is_some() {
                self.record(at_ns, peer.ip, ports, proto, InteractionKind::Closed);
            }
            return Vec::new();
        }
        if flags & tcp::flags::SYN != 0 && flags & tcp::flags::ACK == 0 {
            self.record(
                at_ns,
                peer.ip,
                ports,
                proto,
                InteractionKind::SynProbe {
                    open: open.is_some(),
                },
            );
            let ack = seq.wrapping_add(1);
            return match open {
                Some(_) => {
                    let isn = self.cookie(&key, seq);
                    vec![self.segment(
                        peer,
                        ports,
                        isn,
                        ack,
                        tcp::flags::SYN | tcp::flags::ACK,
                        &[],
                    )]
                }
                None => {
                    vec![self.segment(peer, ports, 0, ack, tcp::flags::RST | tcp::flags::ACK, &[])]
                }
            };
        }

        let Some(service) = open else {
            // RFC 793: a segment to a closed port without SYN or RST gets a RST at its ACK.
            self.record(at_ns, peer.ip, ports, proto, InteractionKind::StrayTcp);
            return vec![self.stray_reset(peer, ports, &seg, payload.len())];
        };

        let conn = match self.conns.get(&key).copied() {
            Some(c) => c,
            None => {
                // Completes a handshake only if it acknowledges our cookie.
                let isn = self.cookie(&key, seq.wrapping_sub(1));
                if flags & tcp::flags::ACK == 0 || seg.ack_number() != isn.wrapping_add(1) {
                    self.record(at_ns, peer.ip, ports, proto, InteractionKind::StrayTcp);
                    return vec![self.stray_reset(peer, ports, &seg, payload.len())];
                }
                self.record(at_ns, peer.ip, ports, proto, InteractionKind::Connected);
                let c = Conn {
                    snd_nxt: isn.wrapping_add(1),
                    rcv_nxt: seq,
                    answered: false,
                    serial: self.next_serial,
                };
                self.next_serial += 1;
                self.insert_conn(key, c);
                c
            }
        };
        let mut c = conn;
        let mut out = Vec::new();
        if service.speaks_first && !c.answered {
            out.push(self.banner(peer, ports, &mut c, &service.banner));
        }
        if !payload.is_empty() {
            if seq != c.rcv_nxt {
                // Out of order or a retransmission: acknowledge what we have, as a host does.
                out.push(self.segment(peer, ports, c.snd_nxt, c.rcv_nxt, tcp::flags::ACK, &[]));
                self.conns.insert(key, c);
                return out;
            }
            self.record(
                at_ns,
                peer.ip,
                ports,
                proto,
                InteractionKind::Data {
                    len: payload.len(),
                    head: payload[..payload.len().min(KEPT_PAYLOAD)].to_vec(),
                },
            );
            c.rcv_nxt = c.rcv_nxt.wrapping_add(payload.len() as u32);
            if !c.answered {
                out.push(self.banner(peer, ports, &mut c, &service.banner));
            } else {
                out.push(self.segment(peer, ports, c.snd_nxt, c.rcv_nxt, tcp::flags::ACK, &[]));
            }
        }
        if flags & tcp::flags::FIN != 0 && seq.wrapping_add(payload.len() as u32) == c.rcv_nxt {
            c.rcv_nxt = c.rcv_nxt.wrapping_add(1);
            out.push(self.segment(
                peer,
                ports,
                c.snd_nxt,
                c.rcv_nxt,
                tcp::flags::FIN | tcp::flags::ACK,
                &[],
            ));
            self.conns.remove(&key);
            self.record(at_ns, peer.ip, ports, proto, InteractionKind::Closed);
            return out;
        }
        self.conns.insert(key, c);
        out
    }

    fn insert_conn(&mut self, key: ConnKey, c: Conn) {
        if self.conns.len() >= MAX_CONNECTIONS
            && let Some(oldest) = self
                .conns
                .iter()
                .min_by_key(|(_, c)| c.serial)
                .map(|(k, _)| *k)
        {
            self.conns.remove(&oldest);
            self.stats.evicted += 1;
        }
        self.conns.insert(key, c);
    }

    /// The RST RFC 793 prescribes for a segment that belongs to no connection.
    fn stray_reset(
        &self,
        peer: &Peer,
        ports: (u16, u16),
        seg: &TcpPacket<&[u8]>,
        payload_len: usize,
    ) -> Vec<u8> {
        if seg.ack() {
            self.segment(peer, ports, seg.ack_number(), 0, tcp::flags::RST, &[])
        } else {
            let mut len = payload_len as u32;
            if seg.syn() {
                len += 1;
            }
            if seg.fin() {
                len += 1;
            }
            let ack = seg.seq_number().wrapping_add(len);
            self.segment(peer, ports, 0, ack, tcp::flags::RST | tcp::flags::ACK, &[])
        }
    }

    /// SYN cookie: a keyed hash of the connection and the peer's initial sequence number.
    fn cookie(&self, key: &ConnKey, peer_isn: u32) -> u32 {
        // FNV-1a over the fields, mixed with the key; not cryptographic, which a decoy in a
        // shadow does not need: it only has to be stateless and hard to guess by accident.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.spec.cookie_key;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&key.peer.octets());
        eat(&key.peer_port.to_be_bytes());
        eat(&key.port.to_be_bytes());
        eat(&peer_isn.to_be_bytes());
        (h ^ (h >> 32)) as u32
    }

    /// The service's banner on connection `c`, which then counts as answered.
    fn banner(&self, peer: &Peer, ports: (u16, u16), c: &mut Conn, banner: &[u8]) -> Vec<u8> {
        c.answered = true;
        let seg = self.segment(
            peer,
            ports,
            c.snd_nxt,
            c.rcv_nxt,
            tcp::flags::PSH | tcp::flags::ACK,
            banner,
        );
        c.snd_nxt = c.snd_nxt.wrapping_add(banner.len() as u32);
        seg
    }

    fn segment(
        &self,
        peer: &Peer,
        ports: (u16, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![0u8; tcp::HEADER_LEN + payload.len()];
        let mut p = TcpPacket::new_unchecked(&mut out[..]);
        TcpRepr {
            src_port: ports.1,
            dst_port: ports.0,
            seq_number: seq,
            ack_number: ack,
            flags,
            window_len: 64240,
            urgent_at: 0,
        }
        .emit(&mut p);
        out[tcp::HEADER_LEN..].copy_from_slice(payload);
        let mut p = TcpPacket::new_unchecked(&mut out[..]);
        let _ = p.fill_checksum(&IpAddr::V4(self.spec.ip), &IpAddr::V4(peer.ip));
        self.ipv4_frame_ident(peer, ip_protocol::TCP, &out, ports.0 ^ seq as u16)
    }

    fn ipv4_frame(&mut self, peer: &Peer, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let ident = self.ident;
        self.ident = self.ident.wrapping_add(1);
        self.ipv4_frame_ident(peer, protocol, l4, ident)
    }

    fn ipv4_frame_ident(&self, peer: &Peer, protocol: u8, l4: &[u8], ident: u16) -> Vec<u8> {
        let mut buf = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + l4.len()];
        EthernetRepr {
            src_addr: EthernetAddress(self.spec.mac),
            dst_addr: EthernetAddress(peer.mac),
            ethertype: ethertype::IPV4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        Ipv4Repr {
            src_addr: self.spec.ip,
            dst_addr: peer.ip,
            protocol,
            payload_len: l4.len(),
            ttl: 64,
            tos: 0,
            ident,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut Ipv4Packet::new_unchecked(
            &mut buf[ethernet::HEADER_LEN..],
        ));
        buf[ethernet::HEADER_LEN + ipv4::HEADER_LEN..].copy_from_slice(l4);
        buf
    }
}

#[cfg(test)]
mod tests;
