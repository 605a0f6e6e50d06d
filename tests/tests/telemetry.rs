//! The telemetry ring end to end: the firmware's records against the COUNTERS block, the
//! ring wrapping with phase bits, the heavy-hitter sketch on a skewed traffic mix, a ring the
//! host does not drain, aged rules, and a host that reads no register while it polls.

use std::cell::Cell;

use shadownet_host::driver::{
    Device, DmaBuffer, DriverError, Nic, TelemetryRecord, sim::SimDevice,
};
use shadownet_hw::{
    Port, RegisterView,
    counters::{self, PortCounter, SessionCounter},
    layout::acl::Verdict,
    table::TableId,
    timing::Timing,
};
use shadownet_sim::{
    NicModel,
    datapath::ReadAhead,
    device::{Arrival, Discard},
};
use shadownet_tests::{
    lab::{DB1, Lab, SESSION, WEB1, acl, match_port},
    packet::{Builder, mac},
};

fn from_web1(sport: u16) -> Vec<u8> {
    Builder::udp(WEB1, DB1, sport, 53)
        .macs(mac(0x11), mac(0x21))
        .payload_len(100)
        .build()
}

fn export(nic: &mut Nic<SimDevice>) -> Vec<TelemetryRecord> {
    nic.request_telemetry().expect("enabled");
    nic.device().relax();
    let mut out = Vec::new();
    nic.poll_telemetry(&mut out).expect("poll");
    out
}

#[test]
fn records_match_the_counters_and_the_ring_wraps_with_phase_bits() {
    let mut lab = Lab::new();
    let irq = lab.model().telemetry_eventfd().expect("eventfd");
    // 8 records: round r's export writes r + 4 (vf0, the session, r + 1 heavy hitters, a
    // heartbeat; the last fills the ring exactly), so five exports (30 records) go around
    // the ring almost four times.
    lab.nic.enable_telemetry(3, 0).expect("enable");
    let mut total = 0;
    for round in 0..5u16 {
        for i in 0..=round {
            lab.send(Port::Vport(0), &from_web1(40_000 + i));
        }
        let records = export(&mut lab.nic);
        total += records.len();
        let snap = lab.nic.snapshot_counters().expect("snapshot");
        let rx = |k| snap.get(counters::port(Port::Vport(0), k));
        let tx = |k| snap.get(counters::session(SESSION, k));
        let mut kinds = Vec::new();
        for r in &records {
            match *r {
                TelemetryRecord::Port {
                    port,
                    rx_packets,
                    rx_bytes,
                    ..
                } => {
                    assert_eq!(port, Port::Vport(0), "only vf0 received: {records:?}");
                    assert_eq!(rx_packets, rx(PortCounter::RxPackets));
                    assert_eq!(rx_bytes, rx(PortCounter::RxBytes));
                    kinds.push("port");
                }
                TelemetryRecord::Session {
                    session,
                    tx_packets,
                    tx_bytes,
                    ..
                } => {
                    assert_eq!(session, SESSION);
                    assert_eq!(tx_packets, tx(SessionCounter::TxPackets));
                    assert_eq!(tx_bytes, tx(SessionCounter::TxBytes));
                    assert!(tx_packets > 0, "every frame of vf0 is mirrored");
                    kinds.push("session");
                }
                TelemetryRecord::HeavyHitter { rank, packets, .. } => {
                    // This round's flows (one frame each), ranked.
                    assert_eq!(rank as usize, kinds.len() - 2, "{records:?}");
                    assert_eq!(packets, 1);
                    kinds.push("hh");
                }
                TelemetryRecord::Heartbeat { cycle, .. } => {
                    assert_eq!(cycle, snap.cycle, "the export's device cycle");
                    kinds.push("heartbeat");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(kinds[0], "port");
        assert_eq!(kinds[1], "session");
        assert_eq!(kinds.last(), Some(&"heartbeat"));
        assert_eq!(records.len(), round as usize + 4);
    }
    assert_eq!(total, 30, "the ring wrapped three times");
    assert!(irq.read().expect("interrupts were sent") >= 5);
    assert_eq!(lab.nic.telemetry_dropped(), 0);
}

#[test]
fn the_sketch_finds_three_elephants_among_ten_thousand_mice() {
    let mut lab = Lab::new();
    lab.nic.enable_telemetry(6, 0).expect("enable");
    // Mice: 10,000 flows of 3 packets; elephants: 3 flows of 1,500, 1,200 and 900 packets,
    // spread through the mix by a fixed pseudo-random order.
    let mut flows: Vec<(Vec<u8>, u32)> = (0..10_000u32)
        .map(|i| {
            let f = Builder::udp(
                "192.168.30.1",
                "192.168.40.1",
                1024 + (i % 50_000) as u16,
                7,
            )
            .payload_len(18)
            .build();
            let mut f = f;
            // Distinct source addresses as well as ports: 10,000 different flows.
            f[26..30].copy_from_slice(&[10, 1, (i >> 8) as u8, i as u8]);
            fix_ipv4_checksum(&mut f);
            (f, 3)
        })
        .collect();
    let elephants = [1500u32, 1200, 900];
    for (k, &n) in elephants.iter().enumerate() {
        let f = Builder::udp("192.168.50.1", "192.168.60.1", 5000 + k as u16, 80)
            .payload_len(1000)
            .build();
        flows.push((f, n));
    }
    let mut schedule: Vec<usize> = flows
        .iter()
        .enumerate()
        .flat_map(|(i, (_, n))| std::iter::repeat_n(i, *n as usize))
        .collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..schedule.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        schedule.swap(
            i,
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize,
        );
    }
    let total = schedule.len() as u64;
    let hashes: Vec<u32> = {
        let mut m = lab.model();
        flows
            .iter()
            .map(|(f, _)| {
                let mut ra = ReadAhead::default();
                m.dp.read_ahead(Port::Uplink, f, None, &mut ra);
                ra.flow().expect("parses")
            })
            .collect()
    };
    let mut at = lab.now_ps;
    {
        let mut m = lab.model();
        for chunk in schedule.chunks(64) {
            let batch: Vec<Arrival<'_>> = chunk
                .iter()
                .map(|&i| {
                    at += 200_000;
                    Arrival {
                        port: Port::Uplink,
                        frame: &flows[i].0,
                        at_ps: at,
                    }
                })
                .collect();
            m.receive_batch(&batch, &mut Discard);
        }
        m.finish(&mut Discard);
    }
    lab.now_ps = at;
    let hh: Vec<(u16, u32, u64, u64)> = export(&mut lab.nic)
        .into_iter()
        .filter_map(|r| match r {
            TelemetryRecord::HeavyHitter {
                rank,
                flow,
                packets,
                bytes,
                ..
            } => Some((rank, flow, packets, bytes)),
            _ => None,
        })
        .collect();
    assert!(hh.len() >= 3, "{hh:?}");
    // The count-min bound: e / WIDTH of the packets (with 98 % probability per flow).
    let bound = (std::f64::consts::E / 1024.0 * total as f64).ceil() as u64;
    for (k, &n) in elephants.iter().enumerate() {
        let (rank, flow, packets, bytes) = hh[k];
        assert_eq!(rank, k as u16);
        assert_eq!(flow, hashes[10_000 + k], "elephant {k} at rank {k}: {hh:?}");
        assert!(
            packets >= n as u64 && packets <= n as u64 + bound,
            "elephant {k}: {packets} estimated, {n} sent, bound {bound}"
        );
        let len = flows[10_000 + k].0.len() as u64;
        assert!(bytes >= n as u64 * len && bytes <= (n as u64 + bound) * len);
    }
    for &(_, flow, packets, _) in &hh[3..] {
        assert!(packets <= 3 + bound, "a mouse estimated at {packets}");
        assert!(!hashes[10_000..].contains(&flow));
    }
    let stats = lab.model().firmware_stats();
    assert_eq!(stats.sketch_updates, total, "every packet was sampled");
    let per_update = stats.sketch_cycles as f64 / stats.sketch_updates as f64;
    assert!(per_update < 60.0, "{per_update} cycles per sketch update");
    let per_record = stats.telemetry_cycles as f64 / stats.telemetry_records as f64;
    eprintln!(
        "firmware cycles: {per_update:.1} per sketch update ({} updates), {per_record:.1} per \
         telemetry record ({} records, counter checks included)",
        stats.sketch_updates, stats.telemetry_records
    );
}

fn fix_ipv4_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let mut sum = 0u32;
    for c in f[14..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[test]
fn a_full_ring_drops_and_counts_and_never_overwrites_unread_records() {
    let mut lab = Lab::new();
    // Four records; an export here has vf0, vf1, uplink, the session, heavy hitters and a
    // heartbeat: more than fit.
    lab.nic.enable_telemetry(2, 0).expect("enable");
    lab.send(Port::Vport(0), &from_web1(1));
    lab.send(
        Port::Vport(1),
        &Builder::udp("192.168.10.12", DB1, 2, 53)
            .macs(mac(0x12), mac(0x21))
            .build(),
    );
    lab.send(Port::Uplink, &from_web1(3));
    lab.nic.request_telemetry().expect("enabled");
    lab.nic.device().relax();
    // A second export before the host reads anything: all of it is dropped.
    lab.nic.request_telemetry().expect("enabled");
    lab.nic.device().relax();
    let dropped = lab.nic.telemetry_dropped();
    let stats = lab.model().firmware_stats();
    assert_eq!(stats.telemetry_records, 4, "only what fits was written");
    assert_eq!(u64::from(dropped), stats.telemetry_dropped);
    assert!(dropped >= 4, "{dropped}");
    let mut out = Vec::new();
    assert_eq!(lab.nic.poll_telemetry(&mut out).expect("poll"), 4);
    // The first export's first records, in order, intact: ports by index, then the session.
    let ports: Vec<Port> = out
        .iter()
        .filter_map(|r| match r {
            TelemetryRecord::Port { port, .. } => Some(*port),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [Port::Vport(0), Port::Vport(1), Port::Uplink]);
    assert!(matches!(
        out[3],
        TelemetryRecord::Session {
            session: SESSION,
            ..
        }
    ));
    // With room again, nothing the host missed is lost for good: counters are cumulative
    // and nothing changed since, so the next export writes no port or session record...
    let again = export(&mut lab.nic);
    assert!(
        !again.iter().any(|r| matches!(
            r,
            TelemetryRecord::Port { .. } | TelemetryRecord::Session { .. }
        )),
        "{again:?}"
    );
    // ... but a change is reported.
    lab.send(Port::Vport(0), &from_web1(4));
    let after = export(&mut lab.nic);
    assert!(
        after.iter().any(|r| matches!(
            r,
            TelemetryRecord::Port {
                port: Port::Vport(0),
                rx_packets: 2,
                ..
            }
        )),
        "{after:?}"
    );
}

#[test]
fn a_dropped_record_is_written_at_the_next_export() {
    let mut lab = Lab::new();
    lab.nic.enable_telemetry(0, 0).expect("one record");
    lab.send(Port::Vport(0), &from_web1(1));
    lab.send(Port::Uplink, &from_web1(2));
    let first = export(&mut lab.nic);
    assert!(matches!(
        first[..],
        [TelemetryRecord::Port {
            port: Port::Vport(0),
            ..
        }]
    ));
    let second = export(&mut lab.nic);
    assert!(
        matches!(
            second[..],
            [TelemetryRecord::Port {
                port: Port::Uplink,
                ..
            }]
        ),
        "the uplink's record, dropped before, comes now: {second:?}"
    );
}

#[test]
fn an_aged_rule_is_reported() {
    let mut lab = Lab::new();
    lab.nic.enable_telemetry(4, 0).expect("enable");
    lab.nic
        .write_acl(5, &acl(9, Verdict::Deny, 77, match_port(17, 9, 9)))
        .expect("acl");
    let deadline = lab.nic.set_rule_ttl(TableId::Acl, 5, 1000).expect("ttl");
    // Time passes in the device with traffic.
    for i in 0..10 {
        lab.send(Port::Uplink, &from_web1(i));
    }
    lab.nic.device().relax();
    let mut out = Vec::new();
    lab.nic.poll_telemetry(&mut out).expect("poll");
    assert!(
        out.iter().any(|r| matches!(
            r,
            TelemetryRecord::Aged { table: TableId::Acl, slot: 5, deadline: d, cycle }
                if *d == deadline && *cycle >= deadline
        )),
        "{out:?}"
    );
}

/// A simulated NIC that counts how often the driver touches registers or lets it run.
struct Counting {
    sim: SimDevice,
    views: Cell<u32>,
    relaxes: Cell<u32>,
}

impl Device for Counting {
    fn regs(&self) -> RegisterView<'_> {
        self.views.set(self.views.get() + 1);
        self.sim.regs()
    }
    fn relax(&self) {
        self.relaxes.set(self.relaxes.get() + 1);
        self.sim.relax();
    }
    fn name(&self) -> String {
        "counting sim".to_string()
    }
    fn alloc_dma(&self, len: usize) -> Result<Box<dyn DmaBuffer>, DriverError> {
        self.sim.alloc_dma(len)
    }
}

#[test]
fn polling_reads_no_register() {
    let model = NicModel::new(Timing::DEFAULT).expect("model");
    let mut nic = Nic::open(Counting {
        sim: SimDevice::new(model),
        views: Cell::new(0),
        relaxes: Cell::new(0),
    })
    .expect("opens");
    nic.enable_telemetry(4, 10)
        .expect("enable: export every 10 cycles");
    {
        let mut m = nic.device().sim.model();
        for i in 0..20u16 {
            m.receive(
                Port::Uplink,
                &from_web1(i),
                1_000_000 * (i as u64 + 1),
                &mut Discard,
            );
        }
        m.service();
    }
    let d = nic.device();
    d.views.set(0);
    d.relaxes.set(0);
    let mut out = Vec::new();
    let n = nic.poll_telemetry(&mut out).expect("poll");
    assert!(n >= 3, "a periodic export happened: {out:?}");
    let d = nic.device();
    assert_eq!(d.relaxes.get(), 0, "polling does not wait for the device");
    assert_eq!(
        d.views.get(),
        1,
        "one register access: the CONS_IDX doorbell write"
    );
    let cons = d.sim.regs().telemetry_ring().cons_idx().read().bits();
    assert_eq!(
        cons as usize, n,
        "the doorbell carries the records consumed"
    );
    d.views.set(0);
    assert_eq!(nic.poll_telemetry(&mut out).expect("poll"), 0);
    assert_eq!(
        nic.device().views.get(),
        0,
        "an empty poll touches no register"
    );
}
