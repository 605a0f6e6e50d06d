//! The driver's whole `Nic` API against the simulated NIC, through its register interface:
//! identify, reset, configure, program, read back and delete entries of every table, mirror
//! sessions, counters, and the errors a caller can meet.

use std::net::{IpAddr, Ipv4Addr};

use shadownet_host::driver::{Device, DriverError, Nic, PortConfig, sim::SimDevice};
use shadownet_hw::{
    MAGIC, Port, RegisterView,
    counters::{self, PortCounter, TableCounter},
    layout::{
        Mac, PortRange,
        acl::{AclAction, AclRule, Verdict},
        map::{MapKey, MapValue},
        mirror_filter::{MirrorAction, MirrorFilter, MirrorVerdict},
        rule::{DirectionMatch, RuleMatch},
        session::{Encap, MirrorSession, Mode},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::{VniEntry, VniKey},
        vport::VportEntry,
    },
    table::TableId,
    timing::Timing,
};
use shadownet_sim::{Discard, NicModel, bar::SharedBar};

fn nic() -> Nic<SimDevice> {
    let model = NicModel::new(Timing::DEFAULT).expect("default timing");
    Nic::open(SimDevice::new(model)).expect("the simulated NIC opens")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal")
}

fn map_value(host: &str, vport: Option<u16>) -> MapValue {
    MapValue {
        substrate_ip: ip(host),
        substrate_mac: Mac([2, 0, 0, 0, 0, 2]),
        local_vport: vport,
        shadow: false,
    }
}

fn vni_entry() -> VniEntry {
    VniEntry {
        shadow: false,
        miss_to_host: true,
        default_deny_to_vm: false,
        default_deny_from_vm: false,
        production_vni: None,
    }
}

#[test]
fn identifies_the_device_and_walks_its_register_blocks() {
    let nic = nic();
    let id = nic.identify();
    assert_eq!(id.version.0, 1);
    assert!(id.simulated());
    assert_eq!(id.num_vports, 64);
    assert_eq!(id.num_sessions, 64);
    assert_eq!(id.clock_khz, 250_000);
    assert_eq!(id.blocks.len(), 10, "every block of the chain");
    assert_eq!(id.blocks[0].block_type, shadownet_hw::block_type::ID);
    let versions: Vec<u32> = id.blocks[6..9].iter().map(|b| b.version).collect();
    assert_eq!(
        versions,
        [1, 1, 1],
        "CMD_RING, TELEMETRY_RING and FW_MAILBOX are implemented"
    );
    assert_ne!(id.caps & (1 << 5), 0, "CAPS.CMD_RING");
    assert_ne!(id.caps & (1 << 7), 0, "CAPS.FIRMWARE");
    assert_ne!(id.caps & (1 << 6), 0, "CAPS.TELEMETRY_RING");
    assert_eq!(id.blocks[9].version, 1, "FLASH is implemented");
    assert_ne!(id.caps & (1 << 8), 0, "CAPS.FLASH");
    let map = id.capacities.iter().find(|(t, _)| *t == TableId::Map);
    assert_eq!(map.map(|m| m.1), Some(2_097_152));
}

#[test]
fn every_table_is_programmed_read_back_and_emptied() {
    let mut nic = nic();
    nic.reset().expect("reset");
    let g0 = nic.generation();

    nic.write_vport(
        3,
        &VportEntry {
            vni: 5001,
            mac: Mac([2, 0, 0, 0, 0, 3]),
            enabled: true,
        },
    )
    .expect("vport");
    nic.write_vni(5001, &vni_entry()).expect("vni");
    let key = MapKey {
        vni: 5001,
        ip: ip("192.168.1.7"),
    };
    nic.write_map(&key, &map_value("10.0.0.2", None))
        .expect("map");
    let acl = AclRule {
        matches: RuleMatch {
            scope: Some(5001),
            protocol: Some(6),
            dport: PortRange::single(22),
            ..RuleMatch::ANY
        },
        action: AclAction {
            priority: 5,
            verdict: Verdict::Deny,
            rule_id: 77,
        },
    };
    nic.write_acl(10, &acl).expect("acl");
    let filter = MirrorFilter {
        matches: RuleMatch {
            scope: Some(3),
            direction: DirectionMatch::ToVm,
            ..RuleMatch::ANY
        },
        action: MirrorAction {
            priority: 1,
            verdict: MirrorVerdict::Mirror,
            rule_id: 9,
            session: 2,
            truncate: Some(64),
            sample_one_in: 3,
        },
    };
    nic.write_mirror_filter(4, &filter).expect("mirror filter");
    let skey = ShadowMapKey {
        session: 2,
        vni: 5001,
        ip: ip("192.168.1.7"),
    };
    let sval = ShadowMapValue {
        substrate_ip: ip("10.0.0.3"),
        substrate_mac: Mac([2, 0, 0, 0, 0, 3]),
        shadow_vni: 9001,
    };
    nic.write_shadow_map(&skey, &sval).expect("shadow map");

    for t in TableId::ALL {
        assert_eq!(nic.occupancy(t), 1, "{t} holds one entry");
        let entries = nic.dump(t).expect("dump");
        assert_eq!(entries.len(), 1, "{t} reads back one entry");
    }
    assert_eq!(
        nic.generation(),
        g0 + 6,
        "every change advances the generation"
    );
    // Read back what was written, through the layouts.
    assert_eq!(
        nic.lookup_map(&key).expect("lookup"),
        Some(map_value("10.0.0.2", None))
    );
    let acl_back = nic
        .read_slot(TableId::Acl, 10)
        .expect("read")
        .expect("present");
    assert_eq!(
        RuleMatch::parse(acl_back.key[..48].try_into().expect("48 bytes"), true),
        Ok(acl.matches)
    );
    assert_eq!(
        AclAction::parse(acl_back.value[..16].try_into().expect("16 bytes")),
        Ok(acl.action)
    );
    assert_eq!(
        nic.read_slot(TableId::Acl, 11).expect("read"),
        None,
        "an empty slot"
    );
    let vni_back = nic.dump(TableId::Vni).expect("dump").remove(0);
    assert_eq!(
        VniKey::parse(vni_back.key[..8].try_into().expect("8 bytes")),
        Ok(VniKey { vni: 5001 })
    );

    // Replace, then delete every entry, one way or another.
    nic.write_map(&key, &map_value("10.0.0.9", None))
        .expect("replace");
    assert_eq!(
        nic.occupancy(TableId::Map),
        1,
        "a replacement is not a second entry"
    );
    assert_eq!(
        nic.lookup_map(&key).expect("lookup"),
        Some(map_value("10.0.0.9", None))
    );
    assert!(nic.delete_map(&key).expect("delete"));
    assert!(
        !nic.delete_map(&key).expect("second delete"),
        "deleting twice finds nothing"
    );
    assert!(nic.delete_vni(5001).expect("delete"));
    assert!(nic.delete_shadow_map(&skey).expect("delete"));
    assert!(nic.delete_slot(TableId::Vport, 3).expect("delete"));
    assert!(nic.delete_slot(TableId::Acl, 10).expect("delete"));
    nic.clear_table(TableId::MirrorFilter).expect("clear");
    for t in TableId::ALL {
        assert_eq!(nic.occupancy(t), 0, "{t} is empty");
        assert!(
            nic.dump(t).expect("dump").is_empty(),
            "{t} reads back empty"
        );
    }
    let snapshot = nic.snapshot_counters().expect("counters");
    assert_eq!(
        snapshot.get(counters::table(TableId::Map, TableCounter::Writes)),
        2
    );
    assert_eq!(
        snapshot.get(counters::table(TableId::Map, TableCounter::Deletes)),
        1
    );
}

#[test]
fn sessions_commit_fetch_and_disable() {
    let mut nic = nic();
    let s = MirrorSession {
        enabled: true,
        encap: Encap::Geneve,
        mode: Mode::Redirect,
        shadow_vni: 9001,
        collector_ip: ip("2001:db8::50"),
        collector_mac: Mac([2, 0, 0, 0, 0, 0x50]),
        policer_mbps: 1000,
        policer_burst: 4096,
    };
    nic.configure_session(7, &s).expect("commit");
    assert_eq!(nic.fetch_session(7).expect("fetch"), s);
    nic.disable_session(7).expect("disable");
    assert_eq!(
        nic.fetch_session(7).expect("fetch"),
        MirrorSession {
            enabled: false,
            ..s
        }
    );
    assert!(matches!(
        nic.configure_session(64, &s),
        Err(DriverError::NoSuchSession { session: 64, .. })
    ));
    let bad = MirrorSession {
        policer_burst: 100,
        ..s
    };
    assert!(matches!(
        nic.configure_session(1, &bad),
        Err(DriverError::InvalidEntry { .. })
    ));
}

#[test]
fn counters_count_traffic_and_clear() {
    let mut nic = nic();
    nic.reset().expect("reset");
    nic.configure_port(&PortConfig {
        local_mac: Mac([2, 0, 0, 0, 0, 1]),
        local_ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ..PortConfig::default()
    })
    .expect("port");
    nic.set_enabled(true, false).expect("enable");
    // Ten frames from the host's own stack go to the uplink unchanged.
    let frame = [0u8; 60];
    {
        let mut model = nic.device().model();
        for i in 0..10 {
            model.receive(Port::Pf, &frame, 1_000_000 * (i + 1), &mut Discard);
        }
        model.finish(&mut Discard);
    }
    let c = nic.snapshot_counters().expect("snapshot");
    assert_eq!(c.get(counters::port(Port::Pf, PortCounter::RxPackets)), 10);
    assert_eq!(
        c.get(counters::port(Port::Uplink, PortCounter::TxPackets)),
        10
    );
    assert_eq!(
        c.get(counters::port(Port::Uplink, PortCounter::TxBytes)),
        600
    );
    assert!(c.cycle > 0, "the snapshot says when it was taken");
    nic.clear_counters().expect("clear");
    let c = nic.snapshot_counters().expect("snapshot");
    assert!(c.values.iter().all(|&v| v == 0));
}

#[test]
fn bad_requests_get_typed_errors_and_change_nothing() {
    let mut nic = nic();
    nic.reset().expect("reset");
    let g = nic.generation();
    assert!(matches!(
        nic.delete_slot(TableId::Acl, 8192),
        Err(DriverError::IndexOutOfRange {
            index: 8192,
            capacity: 8192,
            ..
        })
    ));
    let bad_vni = VniEntry {
        production_vni: Some(1 << 24),
        shadow: true,
        ..vni_entry()
    };
    assert!(matches!(
        nic.write_vni(1, &bad_vni),
        Err(DriverError::InvalidEntry { .. })
    ));
    assert!(matches!(
        nic.write_map(
            &MapKey {
                vni: 1 << 24,
                ip: ip("10.1.1.1")
            },
            &map_value("10.0.0.2", None)
        ),
        Err(DriverError::InvalidEntry { .. })
    ));
    let reversed = AclRule {
        matches: RuleMatch {
            src: Some("10.0.0.0/8".parse().expect("prefix")),
            dst: Some("2001:db8::/32".parse().expect("prefix")),
            ..RuleMatch::ANY
        },
        action: AclAction {
            priority: 1,
            verdict: Verdict::Allow,
            rule_id: 1,
        },
    };
    assert!(matches!(
        nic.write_acl(0, &reversed),
        Err(DriverError::InvalidEntry { .. })
    ));
    assert_eq!(nic.generation(), g, "nothing reached the tables");
    for t in TableId::ALL {
        assert_eq!(nic.occupancy(t), 0);
    }
    let msg = nic
        .delete_slot(TableId::Vport, 64)
        .expect_err("out of range")
        .to_string();
    assert!(msg.contains("slot 64") && msg.contains("vport"), "{msg}");
}

#[test]
fn a_full_table_says_so() {
    let mut nic = nic();
    // The VNI table has 4,096 slots; keys cannot all be placed well before that with a
    // bounded displacement search, and the device answers FULL instead of looping.
    let mut placed = 0u32;
    let err = loop {
        match nic.write_vni(placed + 1, &vni_entry()) {
            Ok(()) => placed += 1,
            Err(e) => break e,
        }
        assert!(placed <= 4096, "more keys than slots");
    };
    assert!(
        matches!(
            err,
            DriverError::TableFull {
                table: TableId::Vni,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        placed >= 3900,
        "the table fills to at least 95% before FULL: {placed}"
    );
    assert_eq!(nic.occupancy(TableId::Vni), placed);
}

/// A device whose BAR is shared memory nobody implements: no magic, no device.
struct Absent {
    bar: SharedBar,
}

impl Device for Absent {
    fn regs(&self) -> RegisterView<'_> {
        self.bar.host_view()
    }
    fn relax(&self) {}
    fn name(&self) -> String {
        "absent".to_string()
    }
}

#[test]
fn a_bar_without_the_device_is_refused() {
    let dev = Absent {
        bar: SharedBar::anonymous().expect("mapping"),
    };
    match Nic::open(dev) {
        Err(DriverError::NotOurDevice {
            magic, expected, ..
        }) => {
            assert_eq!(magic, 0);
            assert_eq!(expected, MAGIC);
        }
        other => panic!("expected NotOurDevice, got {:?}", other.err()),
    }
}
