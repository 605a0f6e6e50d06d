use super::*;
use crate::analysis::trafficgen::packet::{Endpoint, IpFields, TcpFields, tcp_frame, udp_frames};
use shadownet_wire::{Headers, parse};

const HP_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];
const HP_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 99);
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x07];
const PEER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

fn honeypot() -> Honeypot {
    Honeypot::new(HoneypotSpec {
        ip: HP_IP,
        mac: HP_MAC,
        services: vec![
            Service::tcp_greeting(22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
            Service::tcp(80, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Service::udp(53, b"\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00"),
        ],
        cookie_key: 42,
    })
    .expect("valid spec")
}

fn peer(port: u16) -> Endpoint {
    Endpoint {
        mac: PEER_MAC,
        ip: PEER_IP,
        port,
    }
}

fn hp(port: u16) -> Endpoint {
    Endpoint {
        mac: HP_MAC,
        ip: HP_IP,
        port,
    }
}

fn ipf() -> IpFields {
    IpFields { ttl: 64, ident: 7 }
}

fn seg(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        &peer(sport),
        &hp(dport),
        None,
        ipf(),
        TcpFields {
            seq,
            ack,
            flags,
            window: 65535,
        },
        &[],
        payload,
    )
}

fn headers(frame: &[u8]) -> Headers {
    parse(frame, &ParseConfig::default()).expect("reply parses")
}

/// The reply's TCP header fields, after checking its addresses and checksum.
fn tcp_reply(frame: &[u8]) -> (u32, u32, u8, Vec<u8>) {
    let h = headers(frame);
    assert_eq!(h.eth_src.0, HP_MAC);
    assert_eq!(h.eth_dst.0, PEER_MAC);
    assert_eq!(h.src_ip(), Some(IpAddr::V4(HP_IP)));
    assert_eq!(h.dst_ip(), Some(IpAddr::V4(PEER_IP)));
    let ip = Ipv4Packet::new_checked(&frame[h.l3_offset as usize..]).expect("ipv4");
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let t = TcpPacket::new_checked(&frame[h.l4_offset as usize..]).expect("tcp");
    assert!(
        t.verify_checksum(&IpAddr::V4(HP_IP), &IpAddr::V4(PEER_IP)),
        "TCP checksum"
    );
    (
        t.seq_number(),
        t.ack_number(),
        t.flags(),
        t.payload().to_vec(),
    )
}

#[test]
fn syn_to_an_open_port_gets_syn_ack_and_to_a_closed_port_rst() {
    let mut h = honeypot();
    let replies = h.handle(&seg(40000, 80, 1000, 0, tcp::flags::SYN, &[]), 1);
    assert_eq!(replies.len(), 1);
    let (_, ack, flags, _) = tcp_reply(&replies[0]);
    assert_eq!(flags, tcp::flags::SYN | tcp::flags::ACK);
    assert_eq!(ack, 1001);

    let replies = h.handle(&seg(40001, 8080, 5000, 0, tcp::flags::SYN, &[]), 2);
    let (seq, ack, flags, _) = tcp_reply(&replies[0]);
    assert_eq!(flags, tcp::flags::RST | tcp::flags::ACK);
    assert_eq!((seq, ack), (0, 5001));

    // A SYN flood costs no state: cookies, not half-open connections.
    for i in 0..1000u16 {
        h.handle(
            &seg(10000 + i, 80, u32::from(i), 0, tcp::flags::SYN, &[]),
            3,
        );
    }
    assert_eq!(h.stats().connections, 0);
    let kinds: Vec<_> = h.interactions()[..2]
        .iter()
        .map(|i| i.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        vec![
            InteractionKind::SynProbe { open: true },
            InteractionKind::SynProbe { open: false }
        ]
    );
}

#[test]
fn a_connection_gets_the_banner_acks_and_closes() {
    let mut h = honeypot();
    let (isn, _, _, _) = tcp_reply(&h.handle(&seg(40000, 80, 1000, 0, tcp::flags::SYN, &[]), 1)[0]);
    // Handshake completion: no reply needed.
    let r = h.handle(
        &seg(40000, 80, 1001, isn.wrapping_add(1), tcp::flags::ACK, &[]),
        2,
    );
    assert!(r.is_empty());
    assert_eq!(h.stats().connections, 1);

    let request = b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n";
    let r = h.handle(
        &seg(
            40000,
            80,
            1001,
            isn.wrapping_add(1),
            tcp::flags::PSH | tcp::flags::ACK,
            request,
        ),
        3,
    );
    assert_eq!(r.len(), 1);
    let (seq, ack, flags, payload) = tcp_reply(&r[0]);
    assert_eq!(seq, isn.wrapping_add(1));
    assert_eq!(ack, 1001 + request.len() as u32);
    assert_eq!(flags, tcp::flags::PSH | tcp::flags::ACK);
    assert_eq!(payload, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");

    // A retransmission of the request is acknowledged, not answered again.
    let r = h.handle(
        &seg(
            40000,
            80,
            1001,
            isn.wrapping_add(1),
            tcp::flags::PSH | tcp::flags::ACK,
            request,
        ),
        4,
    );
    let (_, ack2, flags, payload) = tcp_reply(&r[0]);
    assert_eq!((ack2, flags, payload.len()), (ack, tcp::flags::ACK, 0));

    let fin_seq = 1001 + request.len() as u32;
    let our_next = isn.wrapping_add(1).wrapping_add(payload_len_http());
    let r = h.handle(
        &seg(
            40000,
            80,
            fin_seq,
            our_next,
            tcp::flags::FIN | tcp::flags::ACK,
            &[],
        ),
        5,
    );
    let (seq, ack, flags, _) = tcp_reply(&r[0]);
    assert_eq!(flags, tcp::flags::FIN | tcp::flags::ACK);
    assert_eq!((seq, ack), (our_next, fin_seq + 1));
    assert_eq!(h.stats().connections, 0);

    let kinds: Vec<_> = h.interactions().iter().map(|i| i.kind.clone()).collect();
    assert_eq!(kinds[0], InteractionKind::SynProbe { open: true });
    assert_eq!(kinds[1], InteractionKind::Connected);
    assert_eq!(
        kinds[2],
        InteractionKind::Data {
            len: request.len(),
            head: request.to_vec()
        }
    );
    assert_eq!(*kinds.last().expect("closed"), InteractionKind::Closed);
}

fn payload_len_http() -> u32 {
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".len() as u32
}

#[test]
fn a_service_that_speaks_first_greets_after_the_handshake() {
    let mut h = honeypot();
    let (isn, _, _, _) = tcp_reply(&h.handle(&seg(50000, 22, 7, 0, tcp::flags::SYN, &[]), 1)[0]);
    let r = h.handle(
        &seg(50000, 22, 8, isn.wrapping_add(1), tcp::flags::ACK, &[]),
        2,
    );
    assert_eq!(r.len(), 1);
    let (_, _, _, payload) = tcp_reply(&r[0]);
    assert!(payload.starts_with(b"SSH-2.0-"));
}

#[test]
fn an_ack_that_does_not_match_the_cookie_is_reset() {
    let mut h = honeypot();
    let r = h.handle(&seg(40000, 80, 1001, 12345, tcp::flags::ACK, &[]), 1);
    let (seq, _, flags, _) = tcp_reply(&r[0]);
    assert_eq!((seq, flags), (12345, tcp::flags::RST));
    assert_eq!(h.stats().connections, 0);
    assert_eq!(h.interactions()[0].kind, InteractionKind::StrayTcp);
}

#[test]
fn ping_is_answered_and_udp_to_a_closed_port_is_unreachable() {
    let mut h = honeypot();
    // Echo request built by hand: id 0x1234, seq 1, 8 bytes of data.
    let mut icmp_msg = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    IcmpPacket::new_unchecked(&mut icmp_msg[..]).fill_checksum_v4();
    // Build the request as the peer would: swap roles through a honeypot at the peer's address.
    let peer_side = Honeypot::new(HoneypotSpec {
        ip: PEER_IP,
        mac: PEER_MAC,
        services: vec![],
        cookie_key: 0,
    })
    .expect("spec");
    let hp_peer = Peer {
        mac: HP_MAC,
        ip: HP_IP,
    };
    let request = peer_side.ipv4_frame_ident(&hp_peer, ip_protocol::ICMP, &icmp_msg, 9);
    let r = h.handle(&request, 1);
    assert_eq!(r.len(), 1);
    let hd = headers(&r[0]);
    let reply = IcmpPacket::new_checked(&r[0][hd.l4_offset as usize..]).expect("icmp");
    assert_eq!(reply.msg_type(), icmp::v4::ECHO_REPLY);
    assert!(reply.verify_checksum_v4());
    assert_eq!((reply.echo_ident(), reply.echo_seq_no()), (0x1234, 1));

    let probe = udp_frames(&peer(5353), &hp(161), None, ipf(), b"public").remove(0);
    let r = h.handle(&probe, 2);
    let hd = headers(&r[0]);
    let unreach = IcmpPacket::new_checked(&r[0][hd.l4_offset as usize..]).expect("icmp");
    assert_eq!((unreach.msg_type(), unreach.msg_code()), (3, 3));
    assert!(unreach.verify_checksum_v4());
    // It quotes the probe's IP header and the first 8 bytes of its UDP header.
    let quoted = &r[0][hd.l4_offset as usize + 8..];
    assert_eq!(
        quoted,
        &probe[ethernet::HEADER_LEN..ethernet::HEADER_LEN + 28]
    );

    let query = udp_frames(&peer(5353), &hp(53), None, ipf(), b"\x12\x34\x01\x00").remove(0);
    let r = h.handle(&query, 3);
    let hd = headers(&r[0]);
    assert_eq!(
        hd.l4,
        L4::Udp {
            sport: 53,
            dport: 5353
        }
    );
}

#[test]
fn arp_for_the_honeypot_is_answered_and_other_traffic_ignored() {
    let mut h = honeypot();
    let mut req = vec![0u8; ethernet::HEADER_LEN + arp::ETHERNET_IPV4_LEN];
    EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress([0xff; 6]),
        ethertype: ethertype::ARP,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut req[..]));
    ArpRepr {
        operation: arp::operation::REQUEST,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: HP_IP,
    }
    .emit(&mut ArpPacket::new_unchecked(
        &mut req[ethernet::HEADER_LEN..],
    ));
    let r = h.handle(&req, 1);
    assert_eq!(r.len(), 1);
    let reply =
        ArpRepr::parse(&ArpPacket::new_checked(&r[0][ethernet::HEADER_LEN..]).expect("arp"))
            .expect("arp");
    assert_eq!(reply.operation, arp::operation::REPLY);
    assert_eq!(reply.source_hardware_addr.0, HP_MAC);
    assert_eq!(reply.target_protocol_addr, PEER_IP);

    // Someone else's address, garbage, and a corrupted checksum: no answers, all counted.
    let other = Endpoint {
        ip: Ipv4Addr::new(10, 0, 1, 5),
        ..hp(80)
    };
    let elsewhere = tcp_frame(
        &peer(1),
        &other,
        None,
        ipf(),
        TcpFields {
            seq: 1,
            ack: 0,
            flags: tcp::flags::SYN,
            window: 1,
        },
        &[],
        &[],
    );
    assert!(h.handle(&elsewhere, 2).is_empty());
    assert!(h.handle(&[0u8; 9], 3).is_empty());
    let mut bad = seg(40000, 80, 1, 0, tcp::flags::SYN, &[]);
    let last = bad.len() - 1;
    bad[last - 5] ^= 0xff; // inside the TCP header: the checksum no longer matches
    assert!(h.handle(&bad, 4).is_empty());
    let s = h.stats();
    assert_eq!(
        (s.frames, s.not_for_us, s.malformed, s.replies),
        (4, 1, 2, 1)
    );
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    let spec = |services| HoneypotSpec {
        ip: HP_IP,
        mac: HP_MAC,
        services,
        cookie_key: 0,
    };
    assert_eq!(
        Honeypot::new(spec(vec![Service::tcp(80, b"a"), Service::tcp(80, b"b")])).err(),
        Some(HoneypotError::DuplicateService {
            transport: Transport::Tcp,
            port: 80
        })
    );
    assert_eq!(
        Honeypot::new(spec(vec![Service::udp(0, b"")])).err(),
        Some(HoneypotError::PortZero {
            transport: Transport::Udp
        })
    );
    assert!(matches!(
        Honeypot::new(spec(vec![Service::tcp(80, &[0u8; 2000])])),
        Err(HoneypotError::BannerTooLong { len: 2000, .. })
    ));
    let mut s = spec(vec![]);
    s.ip = Ipv4Addr::BROADCAST;
    assert_eq!(
        Honeypot::new(s).err(),
        Some(HoneypotError::BadAddress(Ipv4Addr::BROADCAST))
    );
}
