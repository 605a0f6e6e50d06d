//! Redirect mode's release path (issue 4, item 5): a redirected frame reaches production only
//! when the shadow's analysis sends it back as a release (Geneve, production VNI, flag
//! RELEASED) from the address it was redirected to; the NIC then delivers the inner frame on
//! the production path without redirecting it again. Forged releases and releases for
//! sessions not in redirect mode are dropped and counted.

use shadownet_hw::{
    Port,
    counters::{PipelineCounter, PortCounter, SessionCounter},
    drop::DropReason,
    layout::session::{Encap, Mode},
};
use shadownet_tests::{
    decode::{decode, summary},
    lab::*,
    packet::{Builder, ip, mac, vxlan},
};
use shadownet_wire::{
    EncapParams, EthernetAddress, ParseConfig, SHADOW_DIRECTION_TO_VM, SHADOW_FLAG_REDIRECTED,
    SHADOW_FLAG_RELEASED, ShadowMetadata, TunnelHeader, TunnelKind, emit_encap, release_frame,
};

const VF0: Port = Port::Vport(0);

fn redirect_lab() -> Lab {
    let mut lab = Lab::new();
    lab.nic
        .configure_session(SESSION, &Lab::session(Encap::Geneve, Mode::Redirect))
        .expect("session");
    lab
}

/// The release the shadow's analysis node sends for a redirected frame.
fn release_of(redirected: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; redirected.len() + 64];
    let n = release_frame(redirected, &ParseConfig::default(), PROD_VNI, &mut out)
        .expect("a redirected frame has a release");
    out.truncate(n);
    out
}

/// A release built by hand: from `src` to this NIC, for `session`, carrying `inner`.
fn forged_release(src: &str, session: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
    let params = EncapParams {
        src_mac: EthernetAddress(mac(3)),
        dst_mac: EthernetAddress(mac(1)),
        src_ip: ip(src),
        dst_ip: ip(LOCAL),
        udp_src_port: 50_001,
        udp_dst_port: 6081,
        ttl: 64,
        tunnel: TunnelHeader::Geneve {
            vni,
            shadow: Some(ShadowMetadata {
                session,
                direction: SHADOW_DIRECTION_TO_VM,
                flags: SHADOW_FLAG_RELEASED,
                sequence: 0,
                original_len: inner.len() as u16,
            }),
        },
    };
    let mut out = vec![0u8; inner.len() + 128];
    let n = emit_encap(&params, inner, &mut out).expect("encapsulates");
    out.truncate(n);
    out
}

/// db1 → web1 as it arrives from db1's host (VXLAN to this NIC): (inner, tunnel frame).
fn db1_to_web1() -> (Vec<u8>, Vec<u8>) {
    let inner = Builder::tcp(DB1, WEB1, 5432, 40_000)
        .macs(mac(0x21), mac(0x11))
        .payload_len(100)
        .build();
    let outer = vxlan(PROD_HOST, LOCAL, PROD_VNI, &inner);
    (inner, outer)
}

#[test]
fn a_released_frame_reaches_the_production_vf_byte_identical() {
    let mut lab = redirect_lab();
    let (inner, outer) = db1_to_web1();
    let sent = lab.send(Port::Uplink, &outer);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    let d = decode(&sent[0]);
    assert_eq!(d.dst, ip(SHADOW_HOST), "redirected to web1's shadow node");
    assert_eq!(
        d.shadow.map(|m| m.flags),
        Some(SHADOW_FLAG_REDIRECTED),
        "redirected"
    );
    assert_eq!(lab.counts().port(VF0, PortCounter::TxPackets), 0);

    let release = release_of(&sent[0].bytes);
    let r = decode(&shadownet_tests::lab::Sent {
        bytes: release.clone(),
        ..sent[0].clone()
    });
    assert_eq!(r.kind, TunnelKind::Geneve);
    assert_eq!(r.vni, PROD_VNI);
    assert_eq!((r.src, r.dst), (ip(SHADOW_HOST), ip(LOCAL)));
    assert_eq!(r.shadow.map(|m| m.flags), Some(SHADOW_FLAG_RELEASED));

    let out = lab.send(Port::Uplink, &release);
    assert_eq!(out.len(), 1, "{:?}", summary(&out));
    assert_eq!(out[0].port, VF0);
    assert!(!out[0].mirror);
    assert_eq!(out[0].session, None, "a released frame is production");
    assert_eq!(out[0].bytes, inner, "byte-identical to the original");
    let c = lab.counts();
    assert_eq!(c.pipeline(PipelineCounter::Released), 1);
    assert_eq!(
        c.pipeline(PipelineCounter::ReleasedBytes),
        inner.len() as u64
    );
    assert_eq!(
        c.session(SESSION, SessionCounter::Redirected),
        1,
        "the release is not redirected again"
    );
    assert_eq!(c.session(SESSION, SessionCounter::Copies), 0);
    assert_eq!(c.port(VF0, PortCounter::TxPackets), 1);
    assert!(c.drops().is_empty(), "{:?}", c.drops());
}

#[test]
fn a_released_vm_frame_goes_to_the_destination_host_and_is_not_redirected_again() {
    let mut lab = redirect_lab();
    let f = Builder::tcp(WEB1, DB1, 40_000, 5432)
        .macs(mac(0x11), mac(0x21))
        .payload_len(10)
        .build();
    let sent = lab.send(VF0, &f);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(decode(&sent[0]).vni, SHADOW_VNI);

    let out = lab.send(Port::Uplink, &release_of(&sent[0].bytes));
    assert_eq!(out.len(), 1, "{:?}", summary(&out));
    assert_eq!(out[0].port, Port::Uplink);
    assert!(!out[0].mirror);
    let d = decode(&out[0]);
    assert_eq!(d.kind, TunnelKind::Vxlan, "production's own tunnel");
    assert_eq!(d.vni, PROD_VNI);
    assert_eq!((d.src, d.dst), (ip(LOCAL), ip(PROD_HOST)));
    assert_eq!(d.inner, f, "the original frame, unchanged");
    let c = lab.counts();
    assert_eq!(c.session(SESSION, SessionCounter::Redirected), 1);
    assert_eq!(c.pipeline(PipelineCounter::Released), 1);
}

#[test]
fn a_release_of_a_collector_bound_redirect_takes_the_standard_path() {
    // web1 → .99 misses the map (the network sends misses to the host) and has no shadow
    // node: the redirect went to the session's collector, so the release must come from it.
    let mut lab = redirect_lab();
    let other = "192.168.10.99";
    let f = Builder::tcp(WEB1, other, 40_000, 443).build();
    let sent = lab.send(VF0, &f);
    assert_eq!(decode(&sent[0]).dst, ip(COLLECTOR));
    let out = lab.send(Port::Uplink, &release_of(&sent[0].bytes));
    assert_eq!(out.len(), 1, "{:?}", summary(&out));
    assert_eq!(out[0].port, Port::Pf);
    assert_eq!(out[0].bytes, f);

    // The same frame released by the shadow host instead of the collector is forged.
    let forged = forged_release(SHADOW_HOST, SESSION, PROD_VNI, &f);
    assert!(lab.send(Port::Uplink, &forged).is_empty());
    assert_eq!(lab.counts().drop(DropReason::ReleaseUnauthorized), 1);
}

#[test]
fn a_forged_release_from_another_address_is_dropped_and_counted() {
    let mut lab = redirect_lab();
    let (inner, _) = db1_to_web1();
    // From db1's production host (the frame's real origin), not from the shadow.
    let forged = forged_release(PROD_HOST, SESSION, PROD_VNI, &inner);
    let out = lab.send(Port::Uplink, &forged);
    assert!(out.is_empty(), "{:?}", summary(&out));
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::ReleaseUnauthorized), 1);
    assert_eq!(c.port(Port::Uplink, PortCounter::RxDrops), 1);
    assert_eq!(c.port(VF0, PortCounter::TxPackets), 0);
    assert_eq!(c.pipeline(PipelineCounter::Released), 0);

    // From the right address it is accepted: only the address made the difference.
    let genuine = forged_release(SHADOW_HOST, SESSION, PROD_VNI, &inner);
    let out = lab.send(Port::Uplink, &genuine);
    assert_eq!(out.len(), 1, "{:?}", summary(&out));
    assert_eq!(out[0].bytes, inner);
}

#[test]
fn a_release_for_a_session_not_in_redirect_mode_is_dropped() {
    // The lab's session 1 mirrors: nothing of it waits for a verdict.
    let mut lab = Lab::new();
    let (inner, _) = db1_to_web1();
    let release = forged_release(SHADOW_HOST, SESSION, PROD_VNI, &inner);
    assert!(lab.send(Port::Uplink, &release).is_empty());
    // A session that does not exist, and one that is disabled.
    assert!(
        lab.send(
            Port::Uplink,
            &forged_release(SHADOW_HOST, 9_999, PROD_VNI, &inner)
        )
        .is_empty()
    );
    assert!(
        lab.send(
            Port::Uplink,
            &forged_release(SHADOW_HOST, 7, PROD_VNI, &inner)
        )
        .is_empty()
    );
    let c = lab.counts();
    assert_eq!(c.drop(DropReason::ReleaseNotRedirect), 3);
    assert_eq!(c.port(VF0, PortCounter::TxPackets), 0);
    assert_eq!(
        c.session(SESSION, SessionCounter::Copies),
        0,
        "no copy either"
    );
}

#[test]
fn a_release_into_the_shadow_vni_is_isolated() {
    // A release must name the production network: the shadow cannot use one to put a
    // frame into its own network's VFs through the release path.
    let mut lab = redirect_lab();
    let inner = Builder::tcp(DB1, WEB2, 5432, 40_000).build();
    let release = forged_release(SHADOW_HOST, SESSION, SHADOW_VNI, &inner);
    assert!(lab.send(Port::Uplink, &release).is_empty());
    assert_eq!(lab.counts().drop(DropReason::ShadowIsolation), 1);
}

/// A trace destination the test can read back.
#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_trace_shows_the_release_accepted_and_delivered() {
    let mut lab = redirect_lab();
    let (_, outer) = db1_to_web1();
    let sent = lab.send(Port::Uplink, &outer);
    let buf = SharedBuf::default();
    lab.model().set_trace(Box::new(buf.clone()), true);
    lab.send(Port::Uplink, &release_of(&sent[0].bytes));
    lab.model().finish_trace().expect("trace written");
    let text = String::from_utf8(buf.0.lock().expect("not poisoned").clone()).expect("utf8");
    // hw/docs/mirror.md shows this trace.
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    let find = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in the trace:\n{text}"))
    };
    let accepted = find("\"action\":\"release from the shadow\"");
    let delivered = find("\"action\":\"released: local delivery\"");
    let tx = find("\"stage\":\"tx\",\"port\":\"vf0\"");
    assert!(accepted < delivered && delivered < tx, "{text}");
    assert!(
        !text.contains("mirror_filter"),
        "a release is not filtered: {text}"
    );
}
