//! The firmware on the host: its register protocol, command ring and mailbox driven through a
//! register map in ordinary memory, with table memory and DMA faked by plain vectors.

use std::{collections::BTreeMap, net::Ipv4Addr, ptr::NonNull};

use shadownet_firmware::{
    ChangeCounter, Firmware, VERSION,
    command::{ExactAccess, TableHw, Window},
    ring::{Dma, DmaError},
    tables::exact::ExactTable,
};
use shadownet_hw::{
    BAR_SIZE, DeviceView,
    device_regs::{
        cmd_ring::error::RingError,
        fw_mailbox::cmd::MailboxOp,
        tbl_cmd::{cmd::TableOp, status::CmdResult, table::TableId as RegTable},
    },
    layout::{
        Mac, WINDOW_WORDS,
        acl::AclAction,
        bytes_to_words,
        map::{KEY_LEN, MapKey, MapValue, VALUE_LEN},
        mirror_filter::MirrorAction,
        ring::{COMPLETION_LEN, CmdDescriptor, Completion, DESCRIPTOR_LEN, phase},
        rule::RuleMatch,
        vport::VportEntry,
    },
    table::{TableId, exact::Slot},
};

#[repr(C, align(4096))]
struct Bar([u8; BAR_SIZE]);

fn bar() -> Box<Bar> {
    Box::new(Bar([0; BAR_SIZE]))
}

fn view(b: &mut Bar) -> DeviceView<'_> {
    let base = NonNull::new(b.0.as_mut_ptr()).expect("not null");
    // SAFETY: the buffer is BAR_SIZE bytes, page aligned, outlives the view and is only
    // accessed through it.
    unsafe { DeviceView::new(base, BAR_SIZE).expect("a BAR-sized aligned buffer") }
}

const LOG2: u32 = 4;

struct Hw {
    tags: Vec<u32>,
    slots: Vec<Slot>,
    occupancy: u32,
    indexed: BTreeMap<(u8, u32), (Window, Window)>,
}

impl Hw {
    fn new() -> Hw {
        let n = (1usize << LOG2) * 8;
        Hw {
            tags: vec![0; n],
            slots: vec![
                Slot {
                    key: [0; 6],
                    reserved: [0; 2],
                    value: [0; 8]
                };
                n
            ],
            occupancy: 0,
            indexed: BTreeMap::new(),
        }
    }
}

impl TableHw for Hw {
    fn exact(&mut self, table: TableId) -> Option<ExactAccess<'_>> {
        // One small memory serves the MAP table; the others are not used by these tests.
        (table == TableId::Map).then(|| ExactAccess {
            table: ExactTable::new(LOG2, &mut self.tags, &mut self.slots).expect("geometry"),
            occupancy: &mut self.occupancy,
        })
    }
    fn write_vport(&mut self, index: u32, _: VportEntry, value: &Window) -> bool {
        self.indexed
            .insert((0, index), ([0; WINDOW_WORDS], *value))
            .is_some()
    }
    fn write_acl(&mut self, i: u32, _: RuleMatch, _: AclAction, k: &Window, v: &Window) -> bool {
        self.indexed.insert((2, i), (*k, *v)).is_some()
    }
    fn write_mirror_filter(
        &mut self,
        i: u32,
        _: RuleMatch,
        _: MirrorAction,
        k: &Window,
        v: &Window,
    ) -> bool {
        self.indexed.insert((4, i), (*k, *v)).is_some()
    }
    fn delete_indexed(&mut self, table: TableId, index: u32) -> bool {
        self.indexed.remove(&(table as u8, index)).is_some()
    }
    fn read_indexed(&self, table: TableId, index: u32) -> Option<(Window, Window)> {
        self.indexed.get(&(table as u8, index)).copied()
    }
    fn clear_indexed(&mut self, table: TableId) {
        self.indexed.retain(|(t, _), _| *t != table as u8);
    }
    fn occupancy(&self, table: TableId) -> u32 {
        match table {
            TableId::Map => self.occupancy,
            t => self.indexed.keys().filter(|(x, _)| *x == t as u8).count() as u32,
        }
    }
}

/// Host memory at one DMA address.
struct Mem {
    base: u64,
    bytes: Vec<u8>,
}

impl Mem {
    fn range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, DmaError> {
        if !addr.is_multiple_of(4) || !len.is_multiple_of(4) {
            return Err(DmaError::Misaligned { addr });
        }
        let start = addr
            .checked_sub(self.base)
            .ok_or(DmaError::Unmapped { addr, len })? as usize;
        if start + len > self.bytes.len() {
            return Err(DmaError::Unmapped { addr, len });
        }
        Ok(start..start + len)
    }
}

impl Dma for Mem {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }
    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let r = self.range(addr, buf.len())?;
        self.bytes[r].copy_from_slice(buf);
        Ok(())
    }
}

#[derive(Default)]
struct Count(Vec<(TableId, TableOp)>);

impl ChangeCounter for Count {
    fn changed(&mut self, table: TableId, op: TableOp) {
        self.0.push((table, op));
    }
}

fn map_key(i: u32) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    MapKey {
        vni: 5001,
        ip: Ipv4Addr::from(0x0A00_0000 | i).into(),
    }
    .emit(&mut k);
    k
}

fn map_value(i: u32) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    MapValue {
        substrate_ip: Ipv4Addr::new(10, 254, 0, i as u8).into(),
        substrate_mac: Mac([2, 0, 0, 0, 0, i as u8]),
        local_vport: None,
        shadow: false,
    }
    .emit(&mut v);
    v
}

fn window(b: &[u8]) -> Window {
    let mut all = [0u8; 64];
    all[..b.len()].copy_from_slice(b);
    bytes_to_words(&all)
}

struct Rig {
    fw: Firmware,
    hw: Hw,
    mem: Mem,
    count: Count,
}

impl Rig {
    fn new(regs: &DeviceView<'_>) -> Rig {
        let mut fw = Firmware::new();
        fw.boot(regs);
        Rig {
            fw,
            hw: Hw::new(),
            mem: Mem {
                base: 0x1_0000_0000,
                bytes: vec![0; 64 * 1024],
            },
            count: Count::default(),
        }
    }
    fn slice(&mut self, regs: &DeviceView<'_>) -> shadownet_firmware::Slice {
        self.fw.service(
            regs,
            &mut self.hw,
            &mut self.mem,
            &mut self.count,
            &mut shadownet_firmware::NoTelemetry,
        )
    }
}

#[test]
fn register_commands_follow_the_sequence_protocol() {
    let mut b = bar();
    let regs = view(&mut b);
    let mut rig = Rig::new(&regs);
    let t = regs.tbl_cmd();
    assert!(
        !rig.slice(&regs).any(),
        "nothing pending: CMD.SEQ == STATUS.SEQ"
    );
    t.table().write(|w| w.id().variant(RegTable::Map));
    for (i, w) in window(&map_key(1)).iter().enumerate() {
        t.key(i).write(|x| x.set(*w));
    }
    for (i, w) in window(&map_value(1)).iter().enumerate() {
        t.value(i).write(|x| x.set(*w));
    }
    t.cmd()
        .write(|w| w.op().variant(TableOp::Write).seq().set(7));
    let s = rig.slice(&regs);
    assert!(s.table_command);
    assert_eq!(t.status().read().seq().bits(), 7);
    assert_eq!(t.status().read().result().variant(), Some(CmdResult::Ok));
    assert_eq!(t.generation().read().bits(), 1);
    assert_eq!(t.occupancy(TableId::Map as usize).read().bits(), 1);
    assert_eq!(rig.count.0, [(TableId::Map, TableOp::Write)]);
    let slot = t.result_index().read().bits() as usize;
    assert_eq!(rig.hw.slots[slot].key[..6], window(&map_key(1))[..6]);

    // A value that breaks the layout is refused and changes nothing.
    t.value(0).write(|x| x.set(0xFFFF_FFFF));
    t.value(1).write(|x| x.set(0xFFFF_FFFF));
    t.value(7).write(|x| x.set(0xFFFF_FFFF));
    t.key(0).write(|x| x.set(2));
    t.cmd()
        .write(|w| w.op().variant(TableOp::Write).seq().set(8));
    rig.slice(&regs);
    assert_eq!(
        t.status().read().result().variant(),
        Some(CmdResult::BadEntry)
    );
    assert_eq!(t.generation().read().bits(), 1);
    assert_eq!(rig.hw.occupancy, 1);

    // A table id that names no table.
    t.table().write(|w| unsafe { w.id().bits(9) });
    t.cmd()
        .write(|w| w.op().variant(TableOp::Lookup).seq().set(9));
    rig.slice(&regs);
    assert_eq!(
        t.status().read().result().variant(),
        Some(CmdResult::BadTable)
    );
    let stats = rig.fw.stats();
    assert_eq!(stats.register_commands, 3);
    assert!(stats.cycles > 0);
}

fn descriptor(mem: &mut Mem, base: u64, log2: u32, index: u32, op: TableOp, k: u32, seq: u32) {
    let mut key = [0u8; 48];
    key[..KEY_LEN].copy_from_slice(&map_key(k));
    let mut value = [0u8; 32];
    value.copy_from_slice(&map_value(k));
    let d = CmdDescriptor {
        op: op as u8,
        table: TableId::Map as u8,
        phase: phase(index, log2),
        index: 0,
        seq,
        key,
        value,
    };
    let mut b = [0u8; DESCRIPTOR_LEN];
    d.emit(&mut b);
    let slot = index & ((1 << log2) - 1);
    mem.write(base + slot as u64 * DESCRIPTOR_LEN as u64, &b)
        .expect("in the ring");
}

fn completion(mem: &Mem, base: u64, log2: u32, index: u32) -> Completion {
    let slot = index & ((1 << log2) - 1);
    let at = (base - mem.base) as usize + slot as usize * COMPLETION_LEN;
    let mut b = [0u8; COMPLETION_LEN];
    b.copy_from_slice(&mem.bytes[at..at + COMPLETION_LEN]);
    Completion::parse(&b)
}

fn enable(regs: &DeviceView<'_>, desc: u64, compl: u64, log2: u32) {
    let c = regs.cmd_ring();
    c.base_lo().write(|w| w.set(desc as u32));
    c.base_hi().write(|w| w.set((desc >> 32) as u32));
    c.compl_base_lo().write(|w| w.set(compl as u32));
    c.compl_base_hi().write(|w| w.set((compl >> 32) as u32));
    c.size_log2().write(|w| w.set(log2));
    c.irq_enable()
        .write(|w| w.completion().set_bit().error().set_bit());
    c.ctrl().write(|w| w.enable().set_bit());
}

#[test]
fn the_ring_runs_several_passes_in_slices_with_phase_bits() {
    let mut b = bar();
    let regs = view(&mut b);
    let mut rig = Rig::new(&regs);
    let log2 = 3; // 8 entries: 40 descriptors are five passes
    let (desc, compl) = (rig.mem.base, rig.mem.base + 0x2000);
    enable(&regs, desc, compl, log2);
    let c = regs.cmd_ring();
    c.batch_max().write(|w| w.set(3));
    let mut produced = 0u32;
    let mut consumed = 0u32;
    let mut interrupts = 0;
    while consumed < 40 {
        // Fill what is free, ring the doorbell once.
        while produced - consumed < 8 && produced < 40 {
            // Keys 0..20 inserted, then deleted again.
            let (op, k) = if produced < 20 {
                (TableOp::Write, produced)
            } else {
                (TableOp::Delete, produced - 20)
            };
            descriptor(&mut rig.mem, desc, log2, produced, op, k, 1000 + produced);
            produced += 1;
        }
        c.prod_idx().write(|w| w.set(produced));
        let s = rig.slice(&regs);
        assert!(s.ring.executed <= 3, "BATCH_MAX bounds a slice");
        interrupts += u32::from(s.ring.interrupt);
        let cons = c.cons_idx().read().bits();
        while consumed < cons {
            let done = completion(&rig.mem, compl, log2, consumed);
            assert_eq!(done.phase, phase(consumed, log2), "completion {consumed}");
            assert_eq!(done.seq, 1000 + consumed);
            assert_eq!(done.status, CmdResult::Ok as u8, "completion {consumed}");
            assert!(done.cycles > 0);
            consumed += 1;
        }
        // A slot not yet completed still carries the previous pass's phase.
        if consumed < produced {
            let next = completion(&rig.mem, compl, log2, consumed);
            assert_ne!(next.phase, phase(consumed, log2));
        }
    }
    assert_eq!(rig.hw.occupancy, 0, "every key inserted was deleted");
    assert_eq!(regs.tbl_cmd().generation().read().bits(), 40);
    assert_eq!(c.completed_lo().read().bits(), 40);
    assert!(interrupts >= 40 / 3);
    assert!(c.irq_status().read().completion().bit());
    c.irq_ack().write(|w| w.completion().set_bit());
    rig.slice(&regs);
    assert!(!c.irq_status().read().completion().bit(), "acknowledged");
    assert_eq!(c.irq_ack().read().bits(), 0, "the device cleared IRQ_ACK");
    assert_eq!(rig.count.0.len(), 40);
    assert_eq!(rig.fw.stats().descriptors, 40);
}

#[test]
fn ring_errors_stop_the_ring_and_name_the_slot() {
    let mut b = bar();
    let regs = view(&mut b);
    let mut rig = Rig::new(&regs);
    let log2 = 2;
    let (desc, compl) = (rig.mem.base, rig.mem.base + 0x1000);
    enable(&regs, desc, compl, log2);
    let c = regs.cmd_ring();
    // A descriptor with a reserved byte set completes BAD_ENTRY and the ring goes on.
    descriptor(&mut rig.mem, desc, log2, 0, TableOp::Write, 1, 1);
    rig.mem.bytes[100] = 1;
    descriptor(&mut rig.mem, desc, log2, 1, TableOp::Write, 2, 2);
    // The doorbell runs one ahead of the descriptors written: slot 2 is stale.
    c.prod_idx().write(|w| w.set(3));
    let s = rig.slice(&regs);
    assert_eq!(s.ring.executed, 2);
    assert!(s.ring.error && s.ring.interrupt);
    let first = completion(&rig.mem, compl, log2, 0);
    assert_eq!(first.status, CmdResult::BadEntry as u8);
    assert_eq!(first.seq, 1);
    assert_eq!(
        completion(&rig.mem, compl, log2, 1).status,
        CmdResult::Ok as u8
    );
    assert_eq!(
        rig.hw.occupancy, 1,
        "only the valid descriptor changed the table"
    );
    let e = c.error().read();
    assert_eq!(e.code().variant(), Some(RingError::BadPhase));
    assert_eq!(e.index().bits(), 2);
    assert_eq!(c.cons_idx().read().bits(), 2);
    // Stopped: writing the descriptor now changes nothing until the ring is re-enabled.
    descriptor(&mut rig.mem, desc, log2, 2, TableOp::Write, 3, 3);
    assert_eq!(rig.slice(&regs).ring.executed, 0);
    c.ctrl().write(|w| w.enable().clear_bit());
    rig.slice(&regs);
    rig.mem.bytes[..0x2000].fill(0);
    // The host restarts its producer index with the ring (the doorbell is not reset by the
    // device: a stale one would point past descriptors of the new ring).
    c.prod_idx().write(|w| w.set(0));
    enable(&regs, desc, compl, log2);
    rig.slice(&regs);
    assert_eq!(c.error().read().code().variant(), Some(RingError::None));
    assert_eq!(
        c.cons_idx().read().bits(),
        0,
        "re-enabling restarts the indices"
    );

    // A ring outside DMA memory.
    c.ctrl().write(|w| w.enable().clear_bit());
    rig.slice(&regs);
    enable(&regs, 0x4000, compl, log2);
    c.prod_idx().write(|w| w.set(1));
    rig.slice(&regs);
    assert_eq!(
        c.error().read().code().variant(),
        Some(RingError::BadAddress)
    );
    // And an oversized one.
    c.ctrl().write(|w| w.enable().clear_bit());
    rig.slice(&regs);
    enable(&regs, desc, compl, 17);
    rig.slice(&regs);
    assert_eq!(c.error().read().code().variant(), Some(RingError::BadSize));
}

#[test]
fn mailbox_heartbeat_and_version() {
    let mut b = bar();
    let regs = view(&mut b);
    let mut rig = Rig::new(&regs);
    let f = regs.fw_mailbox();
    assert_eq!(f.fw_version().read().major().bits(), VERSION.0);
    let before = f.heartbeat().read().bits();
    rig.slice(&regs);
    rig.slice(&regs);
    assert_eq!(f.heartbeat().read().bits(), before + 2);
    for i in 0..4 {
        f.arg(i).write(|w| w.set(0xA0 + i as u32));
    }
    f.cmd()
        .write(|w| w.op().variant(MailboxOp::Ping).seq().set(1));
    assert!(rig.slice(&regs).mailbox);
    assert_eq!(f.status().read().seq().bits(), 1);
    assert_eq!(f.result(3).read().bits(), 0xA3);
    f.cmd().write(|w| unsafe { w.op().bits(99) }.seq().set(2));
    rig.slice(&regs);
    assert_eq!(f.status().read().result().bits(), CmdResult::BadOp as u8);
    f.cmd()
        .write(|w| w.op().variant(MailboxOp::Stats).seq().set(3));
    rig.slice(&regs);
    assert_eq!(f.result(0).read().bits(), 0, "no table commands yet");
    let cycles = (f.cycles_hi().read().bits() as u64) << 32 | f.cycles_lo().read().bits() as u64;
    assert_eq!(cycles, rig.fw.stats().cycles);
    assert!(cycles > 0);
}

#[test]
fn rules_age_out_in_device_time() {
    let mut b = bar();
    let regs = view(&mut b);
    let mut rig = Rig::new(&regs);
    let f = regs.fw_mailbox();
    let at = |now: u64| {
        f.now_lo().write(|w| w.set(now as u32));
        f.now_hi().write(|w| w.set((now >> 32) as u32));
    };
    rig.hw
        .indexed
        .insert((2, 5), ([1; WINDOW_WORDS], [2; WINDOW_WORDS]));
    at(100);
    let mut seq = 0u16;
    let mut ttl = |rig: &mut Rig, args: [u32; 4]| {
        for (i, a) in args.iter().enumerate() {
            f.arg(i).write(|w| w.set(*a));
        }
        seq += 1;
        let s = seq;
        f.cmd()
            .write(|w| w.op().variant(MailboxOp::SetTtl).seq().set(s));
        rig.slice(&regs);
        assert_eq!(f.status().read().seq().bits(), s);
        f.status().read().result().bits()
    };
    assert_eq!(
        ttl(&mut rig, [3, 0, 10, 0]),
        CmdResult::BadOp as u8,
        "MAP entries do not age"
    );
    assert_eq!(ttl(&mut rig, [9, 0, 10, 0]), CmdResult::BadTable as u8);
    assert_eq!(ttl(&mut rig, [2, 8192, 10, 0]), CmdResult::BadIndex as u8);
    assert_eq!(
        ttl(&mut rig, [2, 6, 10, 0]),
        CmdResult::NotFound as u8,
        "empty slot"
    );
    assert_eq!(ttl(&mut rig, [2, 5, 50, 0]), CmdResult::Ok as u8);
    assert_eq!(f.result(0).read().bits(), 150, "deadline = now + ttl");
    at(149);
    rig.slice(&regs);
    assert!(rig.hw.indexed.contains_key(&(2, 5)));
    at(150);
    rig.slice(&regs);
    assert!(
        !rig.hw.indexed.contains_key(&(2, 5)),
        "expired at its deadline"
    );
    assert_eq!(rig.count.0, [(TableId::Acl, TableOp::Delete)]);
    assert_eq!(rig.fw.stats().aged, 1);
    assert_eq!(regs.tbl_cmd().generation().read().bits(), 1);
}
