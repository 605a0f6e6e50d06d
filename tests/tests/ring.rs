//! The command ring end to end: thousands of map inserts, replacements and deletes through
//! the ring while traffic flows through the simulated NIC, every packet checked against the
//! table state after exactly the descriptors the firmware had executed when it passed, and
//! the final tables against a reference model.

use std::net::{IpAddr, Ipv4Addr};

use shadownet_host::driver::{Device, RingCompletion, RingOp};
use shadownet_hw::{
    Port,
    layout::{
        Mac,
        map::{MapKey, MapValue},
    },
    regs::tbl_cmd::status::CmdResult,
    table::TableId,
};
use shadownet_tests::rng::XorShift64Star as Rng;
use shadownet_tests::{
    decode::try_decode,
    lab::{Collect, Lab, PROD_VNI, WEB1},
    packet::Builder,
};

const KEYS: u32 = 48;
const OPS: usize = 4000;

fn key_ip(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 20, k as u8 + 1)
}

fn key(k: u32) -> MapKey {
    MapKey {
        vni: PROD_VNI,
        ip: IpAddr::V4(key_ip(k)),
    }
}

/// Version `v` of an entry: its substrate address and MAC both encode `v`, so a packet that
/// saw half of one version and half of another would show two different numbers.
fn value(v: u32) -> MapValue {
    MapValue {
        substrate_ip: IpAddr::V4(Ipv4Addr::new(10, 9, (v >> 8) as u8, v as u8)),
        substrate_mac: Mac([2, 0, 0, 9, (v >> 8) as u8, v as u8]),
        local_vport: None,
        shadow: false,
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Put(u32, u32),
    Del(u32),
}

/// What production made of a packet to key `k`: `Some(version)` when it left by the uplink
/// toward a substrate host, `None` when the map missed (the network sends misses to the host).
fn observed(sent: &[shadownet_tests::lab::Sent]) -> Option<u32> {
    let production: Vec<_> = sent.iter().filter(|s| !s.mirror).collect();
    assert_eq!(production.len(), 1, "one production frame: {production:?}");
    let p = production[0];
    match p.port {
        Port::Pf => None,
        Port::Uplink => {
            let t = try_decode(&p.bytes).expect("a tunnel toward the substrate");
            let IpAddr::V4(dst) = t.dst else {
                panic!("IPv4 substrate expected, got {}", t.dst)
            };
            let [a, b, hi, lo] = dst.octets();
            assert_eq!((a, b), (10, 9), "substrate address of a test entry");
            let from_mac = (t.eth_dst[4], t.eth_dst[5]);
            assert_eq!(
                from_mac,
                (hi, lo),
                "outer MAC and address come from one version of the entry"
            );
            Some(u32::from(hi) << 8 | u32::from(lo))
        }
        other => panic!("production frame left by {other}"),
    }
}

#[test]
fn random_ring_operations_under_traffic_see_old_or_new_never_a_mix() {
    let mut lab = Lab::new();
    let base_occupancy = lab.nic.occupancy(TableId::Map);
    lab.nic.enable_cmd_ring(7).expect("ring of 128");
    let irq = lab.model().cmd_ring_eventfd().expect("eventfd");
    let mut rng = Rng(0x5EED_0000_0000_0001);

    let mut ops = Vec::with_capacity(OPS);
    let mut ring_ops = Vec::with_capacity(OPS);
    for i in 0..OPS {
        let k = rng.below(KEYS as u64) as u32;
        let op = if rng.below(3) == 0 {
            Op::Del(k)
        } else {
            Op::Put(k, i as u32 + 1)
        };
        ring_ops.push(match op {
            Op::Put(k, v) => RingOp::write_map(&key(k), &value(v)).expect("valid entry"),
            Op::Del(k) => RingOp::delete_map(&key(k)),
        });
        ops.push(op);
    }
    // history[c][k]: the version of key k after the first c operations.
    let mut history = vec![vec![None; KEYS as usize]];
    let mut expected = Vec::with_capacity(OPS);
    for op in &ops {
        let mut next = history.last().expect("starts with the empty state").clone();
        expected.push(match *op {
            Op::Put(k, v) => {
                let replaced = next[k as usize].replace(v).is_some();
                (CmdResult::Ok, replaced)
            }
            Op::Del(k) => match next[k as usize].take() {
                Some(_) => (CmdResult::Ok, false),
                None => (CmdResult::NotFound, false),
            },
        });
        history.push(next);
    }

    let mut posted = 0usize;
    let mut done: Vec<RingCompletion> = Vec::new();
    let mut packets = 0u32;
    let mut mid_batch = 0u32;
    while done.len() < OPS {
        if posted < OPS && rng.below(4) == 0 {
            let n = (1 + rng.below(100) as usize).min(OPS - posted);
            posted += lab
                .nic
                .ring_post(&ring_ops[posted..posted + n])
                .expect("post");
        }
        lab.nic.set_cmd_ring_slice(1 + rng.below(12) as u32);
        lab.model().service();
        let executed = lab.nic.device().regs().cmd_ring().cons_idx().read().bits() as usize;
        assert!(executed <= posted);
        if executed < posted {
            mid_batch += 1;
        }
        for _ in 0..1 + rng.below(3) {
            let k = rng.below(KEYS as u64) as u32;
            let frame = Builder::udp(WEB1, &key_ip(k).to_string(), 40000, 53).build();
            lab.now_ps += 1_000_000;
            let mut sink = Collect::default();
            {
                let model = &mut *lab.model();
                model.receive(Port::Vport(0), &frame, lab.now_ps, &mut sink);
                model.finish(&mut sink);
            }
            let seen = observed(&sink.0);
            assert_eq!(
                seen, history[executed][k as usize],
                "packet {packets} to key {k} after {executed} of {posted} posted operations"
            );
            packets += 1;
        }
        lab.nic.ring_poll(&mut done).expect("poll");
    }
    assert!(
        mid_batch > 100,
        "packets passed in the middle of batches only {mid_batch} times"
    );
    for (i, (c, (status, replaced))) in done.iter().zip(&expected).enumerate() {
        assert_eq!(c.result(), Some(*status), "operation {i}: {:?}", ops[i]);
        if *status == CmdResult::Ok {
            assert_eq!(c.replaced, *replaced, "operation {i}: {:?}", ops[i]);
            assert!(c.cycles > 0, "every operation is charged cycles");
        }
    }
    let mut wakeups = 0u64;
    while let Ok(n) = irq.read() {
        wakeups += n;
    }
    assert!(wakeups > 0, "the ring raised its interrupt");

    // The final tables, read back through the register interface, equal the reference.
    let last = history.last().expect("non-empty");
    for k in 0..KEYS {
        let got = lab.nic.lookup_map(&key(k)).expect("lookup");
        assert_eq!(got, last[k as usize].map(value), "key {k}");
    }
    let present = last.iter().filter(|v| v.is_some()).count() as u32;
    assert_eq!(lab.nic.occupancy(TableId::Map), base_occupancy + present);
    eprintln!(
        "{OPS} ring operations, {packets} packets, {mid_batch} service slices ended mid-batch, {wakeups} interrupts"
    );
}

#[test]
fn a_batch_through_the_ring_matches_the_register_interface() {
    let mut lab = Lab::new();
    lab.nic.enable_cmd_ring(4).expect("ring of 16");
    // More operations than the ring holds: ring_submit posts, waits and posts again.
    let ops: Vec<RingOp> = (0..100)
        .map(|i| RingOp::write_map(&key(i % KEYS), &value(i + 1)).expect("valid"))
        .collect();
    let done = lab.nic.ring_submit(&ops).expect("submit");
    assert_eq!(done.len(), 100);
    assert!(done.iter().all(RingCompletion::ok));
    assert_eq!(
        done.iter().filter(|c| c.replaced).count(),
        100 - KEYS as usize
    );
    for i in 100 - KEYS..100 {
        let got = lab.nic.lookup_map(&key(i % KEYS)).expect("lookup");
        assert_eq!(got, Some(value(i + 1)));
    }
    // A refused operation is reported in its completion and the batch goes on.
    let bad = RingOp::delete_slot(TableId::Acl, 5).expect("slot in range");
    let again = [
        bad,
        RingOp::lookup_map(&key(0)),
        RingOp::delete_map(&key(0)),
    ];
    let done = lab.nic.ring_submit(&again).expect("submit");
    assert_eq!(done[0].result(), Some(CmdResult::NotFound));
    assert!(done[1].found && done[1].ok());
    assert!(done[2].ok());
    assert_eq!(lab.nic.lookup_map(&key(0)).expect("lookup"), None);
    // The firmware behind the ring: running, its heartbeat advancing, its counters current.
    let before = lab.nic.firmware_status().expect("mailbox");
    assert!(before.running);
    assert_eq!(
        lab.nic.firmware_ping([1, 2, 3, 4]).expect("ping"),
        [1, 2, 3, 4]
    );
    let after = lab.nic.firmware_status().expect("mailbox");
    assert!(after.heartbeat > before.heartbeat, "the heartbeat advances");
    assert!(after.cycles > 0);
    let stats = lab.nic.firmware_stats().expect("stats");
    assert_eq!(stats.descriptors, 103, "every descriptor of both batches");
    assert!(
        stats.register_commands > 0,
        "the lab was programmed through registers"
    );
    // A reset disables the ring; the driver says so instead of waiting.
    lab.nic.reset().expect("reset");
    let err = lab.nic.ring_submit(&again).expect_err("ring is gone");
    assert!(err.to_string().contains("not enabled"), "{err}");
}

#[test]
fn a_rule_with_a_time_to_live_expires_in_the_nic() {
    use shadownet_hw::layout::acl::Verdict;
    use shadownet_tests::lab::{DB1, acl, match_port};

    let mut lab = Lab::new();
    let deny = acl(200, Verdict::Deny, 77, match_port(17, 9999, 9999));
    lab.nic.write_acl(9, &deny).expect("acl");
    let frame = Builder::udp(WEB1, DB1, 1000, 9999).build();
    let production =
        |sent: &[shadownet_tests::lab::Sent]| sent.iter().filter(|s| !s.mirror).count();
    assert_eq!(production(&lab.send(Port::Vport(0), &frame)), 0, "denied");
    // 2,500 cycles at 250 MHz: 10 us; each lab frame is 1 us after the previous.
    let deadline = lab.nic.set_rule_ttl(TableId::Acl, 9, 2_500).expect("ttl");
    assert!(deadline >= 2_500);
    for _ in 0..5 {
        assert_eq!(
            production(&lab.send(Port::Vport(0), &frame)),
            0,
            "still denied"
        );
    }
    assert!(
        lab.nic.read_slot(TableId::Acl, 9).expect("read").is_some(),
        "not yet"
    );
    for _ in 0..10 {
        lab.send(Port::Vport(0), &frame);
    }
    // The next command lets the cores run a slice with the clock past the deadline.
    assert_eq!(
        lab.nic.read_slot(TableId::Acl, 9).expect("read"),
        None,
        "expired"
    );
    assert_eq!(lab.nic.occupancy(TableId::Acl), 0);
    assert_eq!(
        production(&lab.send(Port::Vport(0), &frame)),
        1,
        "allowed again"
    );

    // Rewriting a slot cancels its time to live; only rules age; bad slots are refused.
    lab.nic.write_acl(9, &deny).expect("acl");
    lab.nic.set_rule_ttl(TableId::Acl, 9, 2_500).expect("ttl");
    lab.nic.write_acl(9, &deny).expect("rewrite");
    for _ in 0..20 {
        lab.send(Port::Vport(0), &frame);
    }
    assert!(
        lab.nic.read_slot(TableId::Acl, 9).expect("read").is_some(),
        "the new rule stays"
    );
    assert!(lab.nic.set_rule_ttl(TableId::Map, 0, 10).is_err());
    assert!(lab.nic.set_rule_ttl(TableId::Acl, 8192, 10).is_err());
    let err = lab
        .nic
        .set_rule_ttl(TableId::Acl, 100, 10)
        .expect_err("empty slot");
    assert!(err.to_string().contains("no such entry"), "{err}");
}
