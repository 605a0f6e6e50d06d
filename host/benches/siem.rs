//! Findings export: EVE events built from detector alerts, and syslog (RFC 5424,
//! octet-counted) frames formatted and written through the TCP sink to a loopback receiver
//! that reads and discards them. The rate into a real rsyslogd (which also parses and
//! writes every message) is measured by `tests/tests/siem_rsyslog.rs`.

use std::{
    io::Read,
    net::{IpAddr, TcpListener},
    time::Duration,
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shadownet_host::analysis::{
    detector::{Alert, ClassHint, FeatureDeviation},
    eve::{self, FindingContext, Shadownet},
    siem::{EventSink, SyslogConfig, SyslogSink, syslog_frame},
};

const N: u64 = 1_000;

fn alert(i: u64) -> Alert {
    let ip = |s: &str| -> IpAddr { s.parse().expect("address") };
    Alert {
        ts_ns: 1_795_255_200_000_000_000 + i,
        score: 20.0,
        class_hint: ClassHint::PortScan,
        src: ip("10.1.0.7"),
        dst: ip("10.1.0.2"),
        proto: 6,
        sport: 40_000 + (i % 1000) as u16,
        dport: 22,
        explanation: vec![FeatureDeviation {
            feature: "src_port_fanout".into(),
            baseline: 2.0,
            observed: 900.0,
            z: 20.0,
        }],
        answer: false,
    }
}

fn bench(c: &mut Criterion) {
    let ctx = FindingContext {
        shadownet: Shadownet {
            tenant: Some("acme".into()),
            shadow: Some("shop-shadow".into()),
            ..Shadownet::default()
        },
        alert_threshold: 6.5,
        ..FindingContext::default()
    };
    let events: Vec<_> = (0..N)
        .map(|i| {
            eve::alert_from_detector(&alert(i), &ctx, Some(0))
                .expect("alert")
                .to_value()
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let cfg = SyslogConfig::new(addr.to_string());
    let mut sink = SyslogSink::new(cfg.clone()).expect("sink");

    let mut g = c.benchmark_group("siem");
    g.throughput(Throughput::Elements(N));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("eve_alert_from_detector", |b| {
        b.iter(|| {
            for i in 0..N {
                std::hint::black_box(
                    eve::alert_from_detector(&alert(i), &ctx, Some(0)).expect("alert"),
                );
            }
        })
    });
    g.bench_function("syslog_frame", |b| {
        b.iter(|| {
            for e in &events {
                std::hint::black_box(syslog_frame(&cfg, e).expect("frame"));
            }
        })
    });
    g.bench_function("syslog_send_loopback", |b| {
        b.iter(|| {
            for e in &events {
                sink.send(e).expect("send");
            }
            sink.flush().expect("flush");
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
