//! tshark — a real decoder, not ours — decodes every frame the NIC sends into the substrate
//! (DESIGN.md: "Wireshark/tshark must decode every frame we emit"): VXLAN and Geneve, IPv4
//! and IPv6 substrates, IPv4 and IPv6 inner frames, TCP, UDP, ICMP, VLAN tags, truncated
//! copies and redirected frames.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use shadownet_capture::PcapWriter;
use shadownet_host::driver::PortConfig;
use shadownet_hw::{
    Port,
    layout::{
        Mac, PortRange,
        mirror_filter::MirrorVerdict,
        rule::RuleMatch,
        session::{Encap, Mode},
        shadow_map::{ShadowMapKey, ShadowMapValue},
    },
};
use shadownet_tests::{
    decode::summary,
    lab::*,
    packet::{Builder, ip, mac, vxlan},
    rules::{map_key, mirror_rule, remote_vm},
    tools,
};

/// This NIC's IPv6 substrate address, db1's host and the shadow host over IPv6.
const LOCAL6: &str = "fd00::1";
const PROD_HOST6: &str = "fd00::2";
const SHADOW_HOST6: &str = "fd00::3";
/// db3: a production VM reached over the IPv6 substrate.
const DB3: &str = "192.168.10.23";
/// IPv6 overlay addresses: web1 (vf0), db1 (IPv4 substrate), db3 (IPv6 substrate).
const WEB1_6: &str = "2001:db8::11";
const DB1_6: &str = "2001:db8::21";
const DB3_6: &str = "2001:db8::23";
/// Copies of packets to ports 7000-7999 are truncated to this many bytes.
const TRUNCATE: usize = 96;

/// What one frame on the uplink should be.
#[derive(Clone, Debug)]
struct Expect {
    what: String,
    vxlan: bool,
    dst: IpAddr,
    vni: u32,
    shadow_option: bool,
    inner: Vec<u8>,
}

/// The lab with an IPv6 substrate address, db3 and the IPv6 overlay addresses mapped, and
/// a truncating filter for ports 7000-7999 on vf0.
fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.nic
        .configure_port(&PortConfig {
            local_mac: Mac(mac(1)),
            local_ipv4: Some(LOCAL.parse().expect("literal")),
            local_ipv6: Some(LOCAL6.parse().expect("literal")),
            ..PortConfig::default()
        })
        .expect("port");
    for (addr, host, shadow) in [
        (DB3, PROD_HOST6, SHADOW_HOST6),
        (DB1_6, PROD_HOST, SHADOW_HOST),
        (DB3_6, PROD_HOST6, SHADOW_HOST6),
    ] {
        lab.nic
            .write_map(&map_key(PROD_VNI, addr), &remote_vm(host, 2, false))
            .expect("map");
        lab.nic
            .write_shadow_map(
                &ShadowMapKey {
                    session: SESSION,
                    vni: PROD_VNI,
                    ip: ip(addr),
                },
                &ShadowMapValue {
                    substrate_ip: ip(shadow),
                    substrate_mac: Mac(mac(3)),
                    shadow_vni: SHADOW_VNI,
                },
            )
            .expect("shadow map");
    }
    let mut f = mirror_rule(
        0,
        20,
        MirrorVerdict::Mirror,
        7,
        RuleMatch {
            dport: PortRange::new(7000, 7999).expect("range"),
            ..RuleMatch::ANY
        },
    );
    f.action.truncate = Some(TRUNCATE as u16);
    lab.nic.write_mirror_filter(1, &f).expect("filter");
    lab
}

/// The frames web1 sends: every destination (IPv4/IPv6 overlay × IPv4/IPv6 substrate) with
/// TCP, UDP, ICMP, a VLAN tag, and a port whose copies are truncated.
fn web1_frames() -> Vec<(String, Vec<u8>, &'static str, &'static str)> {
    let mut out = Vec::new();
    for (src, dst, prod, shadow) in [
        (WEB1, DB1, PROD_HOST, SHADOW_HOST),
        (WEB1, DB3, PROD_HOST6, SHADOW_HOST6),
        (WEB1_6, DB1_6, PROD_HOST, SHADOW_HOST),
        (WEB1_6, DB3_6, PROD_HOST6, SHADOW_HOST6),
    ] {
        let m = |b: Builder| b.macs(mac(0x11), mac(0x21));
        for (what, b) in [
            (
                "tcp",
                m(Builder::tcp(src, dst, 40_000, 5432).payload_len(100)),
            ),
            (
                "udp",
                m(Builder::udp(src, dst, 40_001, 43_210).payload_len(40)),
            ),
            ("icmp", m(Builder::icmp_echo(src, dst).payload_len(56))),
            (
                "vlan tcp",
                m(Builder::tcp(src, dst, 40_002, 443).vlan(0x8100, 100)),
            ),
            (
                "qinq udp",
                m(Builder::udp(src, dst, 40_003, 123)
                    .vlan(0x88A8, 10)
                    .vlan(0x8100, 20)
                    .payload_len(48)),
            ),
            (
                "truncated tcp",
                m(Builder::tcp(src, dst, 40_004, 7000).payload_len(600)),
            ),
        ] {
            out.push((format!("{what} {src} > {dst}"), b.build(), prod, shadow));
        }
    }
    out
}

/// Sends everything and returns the uplink frames with what each should be.
fn run(lab: &mut Lab) -> Vec<(Vec<u8>, u64, Expect)> {
    let mut out = Vec::new();
    let mut push = |sent: Vec<Sent>, expect: &dyn Fn(&Sent) -> Expect| {
        for s in sent.iter().filter(|s| s.port == Port::Uplink) {
            out.push((s.bytes.clone(), s.start_ps / 1000, expect(s)));
        }
    };
    for (encap, mode) in [
        (Encap::Geneve, Mode::Mirror),
        (Encap::Vxlan, Mode::Mirror),
        (Encap::Geneve, Mode::Redirect),
    ] {
        lab.nic
            .configure_session(SESSION, &Lab::session(encap, mode))
            .expect("session");
        for (what, f, prod, shadow) in web1_frames() {
            let sent = lab.send(Port::Vport(0), &f);
            let want = if mode == Mode::Redirect { 1 } else { 2 };
            assert_eq!(sent.len(), want, "{what}: {:?}", summary(&sent));
            push(sent, &|s: &Sent| {
                let truncated = s.mirror && f.len() > TRUNCATE && what.starts_with("truncated");
                if s.session.is_none() {
                    Expect {
                        what: format!("production {what}"),
                        vxlan: true,
                        dst: ip(prod),
                        vni: PROD_VNI,
                        shadow_option: false,
                        inner: f.clone(),
                    }
                } else {
                    Expect {
                        what: format!("{encap:?} {mode:?} {what}"),
                        vxlan: encap == Encap::Vxlan,
                        dst: ip(shadow),
                        vni: SHADOW_VNI,
                        shadow_option: encap == Encap::Geneve,
                        inner: if truncated {
                            f[..TRUNCATE].to_vec()
                        } else {
                            f.clone()
                        },
                    }
                }
            });
        }
        // Ingress: db1 → web1 from the uplink, copied toward web1's shadow.
        let inner = Builder::udp(DB1, WEB1, 43_210, 40_000)
            .macs(mac(0x21), mac(0x11))
            .payload_len(30)
            .build();
        let sent = lab.send(Port::Uplink, &vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner));
        assert_eq!(sent.len(), if mode == Mode::Redirect { 1 } else { 2 });
        push(sent, &|_| Expect {
            what: format!("{encap:?} {mode:?} ingress copy"),
            vxlan: encap == Encap::Vxlan,
            dst: ip(SHADOW_HOST),
            vni: SHADOW_VNI,
            shadow_option: encap == Encap::Geneve,
            inner: inner.clone(),
        });
    }
    out
}

/// A unique scratch directory under the system temp dir.
fn scratch() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "shadownet-tshark-decode-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Every value under `key` anywhere in `v`.
fn find<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    out.push(x);
                }
                find(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| find(x, key, out)),
        _ => {}
    }
}

fn all<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    find(v, key, &mut out);
    out
}

/// Keys anywhere in `v` starting with `prefix`.
fn keys_with_prefix(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.starts_with(prefix) {
                    out.push(format!("{k}: {x}"));
                }
                keys_with_prefix(x, prefix, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys_with_prefix(x, prefix, out)),
        _ => {}
    }
}

/// A layer that may appear more than once (`--no-duplicate-keys` makes repeats an array):
/// its occurrences, outermost first.
fn occurrences<'a>(layers: &'a Value, name: &str) -> Vec<&'a Value> {
    match layers.get(name) {
        None => Vec::new(),
        Some(Value::Array(a))
            if name.ends_with("_raw") && a.first().is_some_and(Value::is_string) =>
        {
            vec![layers.get(name).expect("present")]
        }
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// tshark's severity value for errors.
const EXPERT_ERROR: &str = "8388608";

/// What is wrong with tshark's decode of one frame.
#[derive(Default)]
struct Problems {
    /// The decode disagrees with what the frame should be.
    decode: Vec<String>,
    /// `_ws.malformed` entries and expert infos of severity error.
    errors: Vec<String>,
}

/// Checks tshark's decode of one frame against what it should be.
fn check(frame: &Value, e: &Expect) -> Problems {
    let mut problems = Vec::new();
    let layers = &frame["_source"]["layers"];
    let v6 = e.dst.is_ipv6();
    let protocols = text(&layers["frame"]["frame.protocols"]);
    let want = format!(
        "eth:ethertype:{}:udp:{}:eth",
        if v6 { "ipv6" } else { "ip" },
        if e.vxlan { "vxlan" } else { "geneve" }
    );
    if !(protocols == want || protocols.starts_with(&format!("{want}:"))) {
        problems.push(format!("protocols {protocols}, want {want}:…"));
    }
    let (outer, dst_key) = if v6 {
        (occurrences(layers, "ipv6"), "ipv6.dst")
    } else {
        (occurrences(layers, "ip"), "ip.dst")
    };
    let dst: Option<IpAddr> = outer
        .first()
        .and_then(|l| l.get(dst_key))
        .and_then(Value::as_str)
        .and_then(|s| {
            if v6 {
                s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
            } else {
                s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
            }
        });
    if dst != Some(e.dst) {
        problems.push(format!("outer {dst_key} {dst:?}, want {}", e.dst));
    }
    let vni = if e.vxlan {
        layers["vxlan"]["vxlan.vni"]
            .as_str()
            .and_then(|s| s.parse::<u32>().ok())
    } else {
        layers["geneve"]["geneve.vni"]
            .as_str()
            .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    if vni != Some(e.vni) {
        problems.push(format!("VNI {vni:?}, want {}", e.vni));
    }
    let classes: Vec<&str> = all(&layers["geneve"], "geneve.option.class")
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    if e.shadow_option != classes.contains(&"0xff53") {
        problems.push(format!(
            "Geneve option classes {classes:?}, shadow option expected: {}",
            e.shadow_option
        ));
    }
    let bytes = hex(text(&layers["frame_raw"][0]));
    match occurrences(layers, "eth_raw").get(1) {
        Some(inner_eth) => {
            let at = inner_eth[1].as_u64().expect("offset") as usize;
            if bytes.get(at..) != Some(&e.inner[..]) {
                problems.push(format!(
                    "inner frame at {at}: {} bytes differ from the {} expected",
                    bytes.len().saturating_sub(at),
                    e.inner.len()
                ));
            }
        }
        None => problems.push("no inner Ethernet layer".to_string()),
    }
    let mut errors = Vec::new();
    let mut malformed = Vec::new();
    keys_with_prefix(layers, "_ws.malformed", &mut malformed);
    if !malformed.is_empty() {
        errors.push("malformed".to_string());
    }
    for x in all(layers, "_ws.expert") {
        for one in x.as_array().map(|a| a.iter().collect()).unwrap_or(vec![x]) {
            if one["_ws.expert.severity"].as_str() == Some(EXPERT_ERROR) {
                errors.push(format!(
                    "expert error: {}",
                    one["_ws.expert.message"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    Problems {
        decode: problems,
        errors,
    }
}

/// Runs the batch and has tshark decode the frames `select` picks; returns each with its
/// decode (`None` when tshark is not there and not required).
fn decode_batch(select: impl Fn(&Expect) -> bool) -> Option<Vec<(Expect, Value)>> {
    if !tools::require("tshark") {
        return None;
    }
    let mut lab = lab();
    let frames: Vec<_> = run(&mut lab)
        .into_iter()
        .filter(|(_, _, e)| select(e))
        .collect();
    assert!(!frames.is_empty());
    let dir = scratch();
    let pcap = dir.join("uplink.pcap");
    let mut w = PcapWriter::create(&pcap, 65_535).expect("pcap");
    for (bytes, ts_ns, _) in &frames {
        w.write(*ts_ns, bytes).expect("write");
    }
    w.finish().expect("finish");
    let decoded = tools::tshark_json(&pcap, &[]);
    assert_eq!(decoded.len(), frames.len(), "tshark saw every frame");
    std::fs::remove_dir_all(&dir).ok();
    Some(
        decoded
            .into_iter()
            .zip(frames)
            .map(|(frame, (_, _, e))| (e, frame))
            .collect(),
    )
}

fn check_all(decoded: &[(Expect, Value)]) -> Vec<(String, Problems)> {
    decoded
        .iter()
        .map(|(e, frame)| (e.what.clone(), check(frame, e)))
        .collect()
}

fn report(results: &[(String, Problems)], errors_too: bool) -> Vec<String> {
    results
        .iter()
        .enumerate()
        .filter_map(|(i, (what, p))| {
            let mut all = p.decode.clone();
            if errors_too {
                all.extend(p.errors.iter().cloned());
            }
            (!all.is_empty()).then(|| format!("frame {} ({what}): {}", i + 1, all.join("; ")))
        })
        .collect()
}

fn is_truncated(e: &Expect) -> bool {
    e.what.contains("truncated") && e.inner.len() == TRUNCATE
}

#[test]
fn tshark_decodes_every_frame_the_nic_sends_to_the_substrate() {
    let Some(decoded) = decode_batch(|e| !is_truncated(e)) else {
        return;
    };
    // 24 frames × 2 mirror encaps × (production + copy) + 24 redirected + 3 ingress copies,
    // less the 8 truncated copies (see the next tests).
    assert_eq!(decoded.len(), 24 * 2 * 2 + 24 + 3 - 8);
    // The check itself sees a wrong VNI, destination, option or inner byte.
    let (e, frame) = decoded
        .iter()
        .find(|(e, _)| e.shadow_option)
        .expect("a Geneve copy");
    let mut inner = e.inner.clone();
    inner[20] ^= 1;
    for wrong in [
        Expect {
            vni: e.vni + 1,
            ..e.clone()
        },
        Expect {
            dst: ip("10.9.9.9"),
            ..e.clone()
        },
        Expect {
            shadow_option: false,
            ..e.clone()
        },
        Expect {
            vxlan: true,
            ..e.clone()
        },
        Expect { inner, ..e.clone() },
    ] {
        assert!(!check(frame, &wrong).decode.is_empty(), "{wrong:?}");
    }
    let results = check_all(&decoded);
    let failures = report(&results, true);
    assert!(
        failures.is_empty(),
        "{} of {} frames:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[test]
fn tshark_decodes_truncated_copies() {
    let Some(decoded) = decode_batch(is_truncated) else {
        return;
    };
    let results = check_all(&decoded);
    // {IPv4, IPv6} inner × {IPv4, IPv6} substrate × {Geneve, VXLAN}.
    assert_eq!(results.len(), 8);
    let failures = report(&results, false);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A truncated copy is a byte-identical prefix of the frame, as a snaplen-cut capture is: the
/// inner IPv4 header still states the original length (the Geneve option carries it too), so
/// tshark's IPv4 length check is the one error it may report, and only for IPv4 inner frames.
#[test]
fn truncated_copies_carry_no_error_but_the_cut_ipv4_length() {
    let Some(decoded) = decode_batch(is_truncated) else {
        return;
    };
    let results = check_all(&decoded);
    assert_eq!(results.len(), 8);
    let mut cut_ipv4 = 0;
    for ((e, _), (what, p)) in decoded.iter().zip(&results) {
        let inner_is_ipv4 = e.inner.get(12..14) == Some(&[0x08, 0x00][..]);
        for err in &p.errors {
            assert!(
                inner_is_ipv4 && err.contains("IPv4 total length exceeds packet length"),
                "{what}: unexpected tshark error: {err}"
            );
            cut_ipv4 += 1;
        }
    }
    assert_eq!(
        cut_ipv4, 4,
        "each truncated IPv4 copy reports its cut length once"
    );
}
