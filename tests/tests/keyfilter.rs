//! The shadow map's key filter under table programming through the real paths — command-ring
//! descriptors executed by the firmware, register commands, CLEAR, reset — interleaved with
//! batches of traffic: every frame's mirror copy goes where the shadow map said at that
//! moment (a key the filter wrongly ruled out would send the copy to the collector instead
//! of the shadow node), every stored key passes the filter, and the writes do not have the
//! filter built again before the next batch.

use std::net::{IpAddr, Ipv4Addr};

use shadownet_host::driver::RingOp;
use shadownet_hw::{
    Port,
    layout::{
        Mac,
        map::{MapKey, MapValue},
        shadow_map::{self, ShadowMapKey, ShadowMapValue},
    },
    table::{TableId, exact},
};
use shadownet_sim::Arrival;
use shadownet_tests::rng::XorShift64Star as Rng;
use shadownet_tests::{
    decode::try_decode,
    lab::{COLLECTOR, Collect, Lab, PROD_HOST, PROD_VNI, SESSION, SHADOW_VNI, WEB1},
    packet::{Builder, ip},
};

const KEYS: u32 = 64;
const ROUNDS: usize = 600;

/// Production address of test key `k`: a remote map entry, so frames to it take the fast
/// lane and its shadow-map look-up.
fn addr(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 30, k as u8 + 1)
}

fn key(k: u32) -> ShadowMapKey {
    ShadowMapKey {
        session: SESSION,
        vni: PROD_VNI,
        ip: IpAddr::V4(addr(k)),
    }
}

/// Version `v` of key `k`'s shadow node: its host's address encodes the version.
fn shadow_host(v: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, (v >> 8) as u8, v as u8)
}

fn value(v: u32) -> ShadowMapValue {
    ShadowMapValue {
        substrate_ip: IpAddr::V4(shadow_host(v)),
        substrate_mac: Mac([2, 0, 0, 9, (v >> 8) as u8, v as u8]),
        shadow_vni: SHADOW_VNI,
    }
}

/// Where the copy of a frame to key `k` went: the shadow host's address, or the collector's.
fn copy_destination(sent: &[shadownet_tests::lab::Sent]) -> IpAddr {
    let copies: Vec<_> = sent.iter().filter(|s| s.mirror).collect();
    assert_eq!(copies.len(), 1, "one copy: {sent:?}");
    try_decode(&copies[0].bytes).expect("a tunnelled copy").dst
}

/// Map entries for the test keys, and the command ring.
fn program(lab: &mut Lab) {
    for k in 0..KEYS {
        lab.nic
            .write_map(
                &MapKey {
                    vni: PROD_VNI,
                    ip: IpAddr::V4(addr(k)),
                },
                &MapValue {
                    substrate_ip: ip(PROD_HOST),
                    substrate_mac: Mac([2, 0, 0, 0, 0, 2]),
                    local_vport: None,
                    shadow: false,
                },
            )
            .expect("map entry");
    }
    lab.nic.enable_cmd_ring(6).expect("ring of 64");
}

#[test]
fn programming_between_batches_keeps_every_stored_key_in_the_filter() {
    let mut lab = Lab::new();
    program(&mut lab);
    let mut rng = Rng(0x5EED_0000_F117_0001);
    let mut state: Vec<Option<u32>> = vec![None; KEYS as usize];
    let rebuilds_before = lab.model().dp.tables.shadow_map.filter_rebuilds();
    let (mut hits, mut frames, mut version) = (0u32, 0u32, 0u32);
    for round in 0..ROUNDS {
        // A few commands: most through the ring (several descriptors per submission), some
        // through the registers, now and then a CLEAR or a reset (which empties every table;
        // the lab is programmed again). Commands apply in the order given: what waits for
        // the ring is submitted before a register command.
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let k = rng.below(u64::from(KEYS)) as u32;
            version += 1;
            match rng.below(10) {
                0..=4 => {
                    ops.push(RingOp::write_shadow_map(&key(k), &value(version)).expect("valid"));
                    state[k as usize] = Some(version);
                }
                5..=6 => {
                    ops.push(RingOp::delete_shadow_map(&key(k)));
                    state[k as usize] = None;
                }
                7 => {
                    submit(&mut lab, &mut ops);
                    lab.nic
                        .write_shadow_map(&key(k), &value(version))
                        .expect("register write");
                    state[k as usize] = Some(version);
                }
                _ => {
                    submit(&mut lab, &mut ops);
                    lab.nic.delete_shadow_map(&key(k)).expect("register delete");
                    state[k as usize] = None;
                }
            }
        }
        submit(&mut lab, &mut ops);
        if round % 97 == 96 {
            lab.nic.clear_table(TableId::ShadowMap).expect("clear");
            state.iter_mut().for_each(|s| *s = None);
        }
        if round % 211 == 210 {
            // Reset: every table emptied, the lab's entries and the test's map written again.
            lab.restart();
            program(&mut lab);
            state.iter_mut().for_each(|s| *s = None);
        }
        // Every stored key passes the filter as it stands (no batch has rebuilt it yet).
        {
            let model = lab.model();
            let view = model.dp.tables.shadow_map.view();
            for k in 0..KEYS {
                let (words, h) = key_hash(k);
                let stored = view.find(&words, h).is_some();
                assert_eq!(
                    stored,
                    state[k as usize].is_some(),
                    "key {k} in round {round}"
                );
                if stored {
                    assert!(
                        view.may_hold(h),
                        "stored key {k} ruled out in round {round}"
                    );
                }
            }
        }
        // A batch of frames from web1 to test keys: each copy goes to the shadow node the
        // shadow map holds for its destination, or to the collector.
        let targets: Vec<u32> = (0..8).map(|_| rng.below(u64::from(KEYS)) as u32).collect();
        let built: Vec<Vec<u8>> = targets
            .iter()
            .map(|&k| Builder::udp(WEB1, &addr(k).to_string(), 40000, 53).build())
            .collect();
        let mut sink = Collect::default();
        let arrivals: Vec<Arrival<'_>> = built
            .iter()
            .map(|f| {
                lab.now_ps += 1_000_000;
                Arrival {
                    port: Port::Vport(0),
                    frame: f,
                    at_ps: lab.now_ps,
                }
            })
            .collect();
        {
            let mut model = lab.model();
            model.receive_batch(&arrivals, &mut sink);
            model.finish(&mut sink);
        }
        for (&k, &packet) in targets.iter().zip(&packets_of(&sink)) {
            let sent: Vec<_> = sink
                .0
                .iter()
                .filter(|s| s.packet == packet)
                .cloned()
                .collect();
            let expected = match state[k as usize] {
                Some(v) => {
                    hits += 1;
                    IpAddr::V4(shadow_host(v))
                }
                None => ip(COLLECTOR),
            };
            assert_eq!(
                copy_destination(&sent),
                expected,
                "copy of a frame to key {k} in round {round}"
            );
            frames += 1;
        }
    }
    let rebuilds = lab.model().dp.tables.shadow_map.filter_rebuilds() - rebuilds_before;
    eprintln!("{ROUNDS} rounds, {frames} frames, {hits} shadow-map hits, {rebuilds} rebuilds");
    assert!(
        hits > frames / 4,
        "only {hits} of {frames} frames hit the shadow map"
    );
    // At most 64 keys, and CLEAR and reset empty the filter: never more stale bits than
    // the floor, so never built again (before, each batch after a write built it again).
    assert_eq!(rebuilds, 0, "the filter was built again {rebuilds} times");
}

/// Runs the descriptors waiting in `ops` through the command ring, and empties it.
fn submit(lab: &mut Lab, ops: &mut Vec<RingOp>) {
    if !ops.is_empty() {
        let done = lab.nic.ring_submit(ops).expect("ring");
        assert_eq!(done.len(), ops.len());
        ops.clear();
    }
}

/// The key words and hash of test key `k`, as the pipeline computes them.
fn key_hash(k: u32) -> (exact::Key, u64) {
    let mut b = [0u8; shadow_map::KEY_LEN];
    key(k).emit(&mut b);
    let words = shadow_map::key_words(SESSION, PROD_VNI, b[8..24].try_into().expect("16 bytes"));
    (words, exact::hash(&words))
}

/// The packet ids of a batch's frames, in arrival order.
fn packets_of(sink: &Collect) -> Vec<u64> {
    let mut ids: Vec<u64> = sink.0.iter().map(|s| s.packet).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
