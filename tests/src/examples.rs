//! The example captures bundled under `examples/` for `examples/two-tier.toml`, generated
//! here so they can be checked and regenerated (`SHADOWNET_BLESS=1 cargo test -p
//! shadownet-tests --test examples`).

use crate::packet::{Builder, arp_request, mac, vxlan};

/// Frames and their timestamps (ns).
pub type Capture = Vec<(u64, Vec<u8>)>;

const WEB1: &str = "192.168.10.11";
const WEB2: &str = "192.168.10.12";
const DB1: &str = "192.168.10.21";

/// What web1 (vf0) sends: database queries, DNS, HTTPS to web2, ARP, pings.
pub fn web1() -> Capture {
    let mut out = Vec::new();
    let mut t = 1_000_000u64;
    let mut push = |f: Vec<u8>, out: &mut Capture| {
        out.push((t, f));
        t += 7_000;
    };
    let web1_mac = mac(0x11);
    let gw = mac(0xfe);
    push(
        arp_request(web1_mac, [192, 168, 10, 11], [192, 168, 10, 21]),
        &mut out,
    );
    for i in 0..120u16 {
        let q = Builder::tcp(WEB1, DB1, 40_000 + i % 8, 5432)
            .macs(web1_mac, gw)
            .flags(0x18)
            .payload_len(60 + (i as usize * 37) % 900)
            .build();
        push(q, &mut out);
        if i % 4 == 0 {
            let dns = Builder::udp(WEB1, "192.168.10.53", 53_000 + i, 53)
                .macs(web1_mac, gw)
                .payload_len(40)
                .build();
            push(dns, &mut out);
        }
        if i % 3 == 0 {
            let https = Builder::tcp(WEB1, WEB2, 50_000 + i, 443)
                .macs(web1_mac, mac(0x12))
                .flags(0x18)
                .payload_len(1200)
                .build();
            push(https, &mut out);
        }
        if i % 30 == 0 {
            push(
                Builder::icmp_echo(WEB1, DB1)
                    .macs(web1_mac, gw)
                    .payload_len(56)
                    .build(),
                &mut out,
            );
        }
    }
    out
}

/// What arrives on the uplink: db1's answers to web1 and web2, SSH attempts, traffic for the
/// host itself, a tunnel for an unknown network, shadow traffic, a malformed frame.
pub fn uplink() -> Capture {
    let mut out = Vec::new();
    let mut t = 1_003_000u64;
    let mut push = |f: Vec<u8>, out: &mut Capture| {
        out.push((t, f));
        t += 9_000;
    };
    for i in 0..100u16 {
        let answer = Builder::tcp(DB1, WEB1, 5432, 40_000 + i % 8)
            .macs(mac(0x21), mac(0x11))
            .flags(0x18)
            .payload_len(200 + (i as usize * 53) % 1200)
            .build();
        push(vxlan("10.0.0.2", "10.0.0.1", 5001, &answer), &mut out);
        if i % 5 == 0 {
            let to_web2 = Builder::tcp(DB1, WEB2, 5432, 41_000 + i)
                .macs(mac(0x21), mac(0x12))
                .flags(0x18)
                .payload_len(300)
                .build();
            push(vxlan("10.0.0.2", "10.0.0.1", 5001, &to_web2), &mut out);
        }
        if i % 10 == 0 {
            // SSH from outside (denied) and from the admin prefix (allowed).
            let ssh = Builder::tcp("203.0.113.7", WEB1, 33_000 + i, 22)
                .macs(mac(0x21), mac(0x11))
                .build();
            push(vxlan("10.0.0.2", "10.0.0.1", 5001, &ssh), &mut out);
            let admin = Builder::tcp("10.9.1.1", WEB1, 34_000 + i, 22)
                .macs(mac(0x21), mac(0x11))
                .build();
            push(vxlan("10.0.0.2", "10.0.0.1", 5001, &admin), &mut out);
        }
        if i % 25 == 0 {
            // Management traffic to the host itself, a tunnel for an unknown network, and
            // the shadow host talking to the local shadow replica of web2.
            push(
                Builder::tcp("10.0.0.9", "10.0.0.1", 22_000, 22)
                    .macs(mac(0x09), mac(1))
                    .build(),
                &mut out,
            );
            let lost = Builder::udp(DB1, WEB1, 1000, 2000).payload_len(20).build();
            push(vxlan("10.0.0.2", "10.0.0.1", 7777, &lost), &mut out);
            let shadow = Builder::tcp(DB1, WEB2, 5432, 42_000)
                .macs(mac(0x21), mac(0x12))
                .payload_len(100)
                .build();
            push(vxlan("10.0.0.3", "10.0.0.1", 9001, &shadow), &mut out);
        }
    }
    // A truncated IPv4 header.
    let mut bad = Builder::udp("10.0.0.2", "10.0.0.1", 1, 2).build();
    bad.truncate(24);
    push(bad, &mut out);
    out
}

/// Writes a capture (nanosecond pcap, Ethernet).
pub fn write(
    path: &std::path::Path,
    capture: &Capture,
) -> Result<(), shadownet_capture::CaptureError> {
    let mut w = shadownet_capture::PcapWriter::create(path, 65_535)?;
    for (t, f) in capture {
        w.write(*t, f)?;
    }
    w.finish()
}
