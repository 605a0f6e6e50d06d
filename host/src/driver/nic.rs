//! The `Nic` API over the register interface.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    sync::atomic::{Ordering, fence},
    time::{Duration, Instant},
};

use shadownet_hw::{
    BlockHeader, CONTRACT_VERSION, MAGIC, NUM_SESSIONS, RegisterView,
    counters::{CounterId, NUM_COUNTERS},
    layout::{
        KEY_BYTES, LayoutError, Mac, VALUE_BYTES, WINDOW_WORDS,
        acl::AclRule,
        bytes_to_words,
        map::{MapKey, MapValue},
        mirror_filter::MirrorFilter,
        rule,
        session::{self, MirrorSession},
        shadow_map::{ShadowMapKey, ShadowMapValue},
        vni::{VniEntry, VniKey},
        vport::VportEntry,
        words_to_bytes,
    },
    regs::{
        counters::cmd::CounterOp,
        ctrl::cmd::CtrlOp,
        mirror::cmd::SessionOp,
        tbl_cmd::{cmd::TableOp, status::CmdResult, table::TableId as RegTableId},
    },
    table::TableId,
};

use super::{Device, DriverError};

/// A KEY or VALUE window.
type Window = [u32; WINDOW_WORDS];

/// How long a command may take before the driver gives up.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// What the device says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Contract version (major, minor, patch).
    pub version: (u16, u8, u8),
    /// `ID.CAPS` bits.
    pub caps: u32,
    /// Build id of the bitstream or model.
    pub build_id: u32,
    /// VF ports.
    pub num_vports: u32,
    /// Mirror sessions.
    pub num_sessions: u32,
    /// Pipeline clock in kHz.
    pub clock_khz: u32,
    /// Uplink rate in Gbit/s.
    pub uplink_gbps: u32,
    /// Table capacities, by table id.
    pub capacities: Vec<(TableId, u32)>,
    /// The register blocks, in chain order.
    pub blocks: Vec<BlockHeader>,
    /// Resets since power-on.
    pub reset_count: u32,
}

impl Identity {
    /// Whether the device is the simulator.
    pub fn simulated(&self) -> bool {
        self.caps & (1 << 31) != 0
    }
}

/// Substrate addressing of the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Substrate MAC.
    pub local_mac: Mac,
    /// Substrate IPv4 address.
    pub local_ipv4: Option<Ipv4Addr>,
    /// Substrate IPv6 address.
    pub local_ipv6: Option<Ipv6Addr>,
    /// VXLAN UDP port.
    pub vxlan_port: u16,
    /// Geneve UDP port.
    pub geneve_port: u16,
    /// Largest frame the uplink sends.
    pub uplink_mtu: u32,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            local_mac: Mac([0; 6]),
            local_ipv4: None,
            local_ipv6: None,
            vxlan_port: 4789,
            geneve_port: 6081,
            uplink_mtu: 9216,
        }
    }
}

/// One slot as read back from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Slot.
    pub index: u32,
    /// KEY words (match words for rule tables).
    pub key: [u8; KEY_BYTES],
    /// VALUE words.
    pub value: [u8; VALUE_BYTES],
}

/// Counters latched at one instant.
#[derive(Clone, Debug)]
pub struct CounterSnapshot {
    /// Device cycle of the snapshot.
    pub cycle: u64,
    /// Values by counter id.
    pub values: Vec<u64>,
}

impl CounterSnapshot {
    /// Value of a counter.
    pub fn get(&self, id: CounterId) -> u64 {
        self.values.get(id.index()).copied().unwrap_or(0)
    }
}

/// The outcome of a table command the device accepted.
struct Reply {
    index: u32,
    valid: bool,
    key: Window,
    value: Window,
}

/// A shadownet NIC.
pub struct Nic<D: Device> {
    pub(super) dev: D,
    pub(super) name: String,
    /// The command ring, once enabled (`driver::ring`).
    pub(super) ring: Option<super::ring::CmdRing>,
    /// The telemetry ring, once enabled (`driver::telemetry`).
    pub(super) telemetry: Option<super::telemetry::TelemetryRing>,
    tbl_seq: u16,
    ctrl_seq: u16,
    mirror_seq: u16,
    counter_seq: u16,
    /// What the KEY and VALUE registers hold: only changed words are written.
    staged_key: Window,
    staged_value: Window,
}

pub(super) fn result_name(r: Option<CmdResult>) -> &'static str {
    match r {
        Some(CmdResult::Ok) => "ok",
        Some(CmdResult::NotFound) => "no such entry",
        Some(CmdResult::Full) => "table full",
        Some(CmdResult::BadTable) => "no such table",
        Some(CmdResult::BadIndex) => "index out of range",
        Some(CmdResult::BadEntry) => "entry breaks the table's layout rules",
        Some(CmdResult::BadOp) => "operation not defined for this table",
        None => "unknown result code",
    }
}

/// The result code of blocks whose STATUS.RESULT is a plain number (same codes as TBL_CMD).
pub(super) fn result_code(code: u8) -> Option<CmdResult> {
    [
        CmdResult::Ok,
        CmdResult::NotFound,
        CmdResult::Full,
        CmdResult::BadTable,
        CmdResult::BadIndex,
        CmdResult::BadEntry,
        CmdResult::BadOp,
    ]
    .into_iter()
    .find(|r| *r as u8 == code)
}

fn reg_table(t: TableId) -> RegTableId {
    match t {
        TableId::Vport => RegTableId::Vport,
        TableId::Vni => RegTableId::Vni,
        TableId::Acl => RegTableId::Acl,
        TableId::Map => RegTableId::Map,
        TableId::MirrorFilter => RegTableId::MirrorFilter,
        TableId::ShadowMap => RegTableId::ShadowMap,
    }
}

fn op_name(op: TableOp) -> &'static str {
    match op {
        TableOp::Nop => "nop",
        TableOp::Write => "write",
        TableOp::Delete => "delete",
        TableOp::Lookup => "lookup",
        TableOp::ReadSlot => "read_slot",
        TableOp::Clear => "clear",
    }
}

fn window<const B: usize>(bytes: &[u8; B]) -> Window {
    let mut all = [0u8; 64];
    all[..B].copy_from_slice(bytes);
    bytes_to_words(&all)
}

fn invalid(what: &'static str) -> impl Fn(LayoutError) -> DriverError {
    move |source| DriverError::InvalidEntry { what, source }
}

fn bits_of(ip: Ipv4Addr) -> u32 {
    u32::from_le_bytes(ip.octets())
}

impl<D: Device> Nic<D> {
    /// Opens the device: checks it is a shadownet NIC of a supported version, walks its
    /// register-block chain and waits until it is ready.
    pub fn open(dev: D) -> Result<Nic<D>, DriverError> {
        let name = dev.name();
        let mut nic = Nic {
            dev,
            name,
            ring: None,
            telemetry: None,
            tbl_seq: 0,
            ctrl_seq: 0,
            mirror_seq: 0,
            counter_seq: 0,
            staged_key: [0; WINDOW_WORDS],
            staged_value: [0; WINDOW_WORDS],
        };
        nic.check_identity()?;
        nic.sync_state();
        tracing::debug!(device = %nic.name, "opened");
        Ok(nic)
    }

    /// The backend.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The backend, mutably (the simulator's ports live there).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    pub(super) fn regs(&self) -> RegisterView<'_> {
        self.dev.regs()
    }

    fn check_identity(&self) -> Result<(), DriverError> {
        let r = self.regs();
        let magic = r.id().magic().read().bits();
        if magic != MAGIC {
            return Err(DriverError::NotOurDevice {
                device: self.name.clone(),
                magic,
                expected: MAGIC,
            });
        }
        let major = r.id().dev_version().read().major().bits();
        if major != CONTRACT_VERSION.0 {
            return Err(DriverError::UnsupportedVersion {
                device: self.name.clone(),
                found: major,
                supported: CONTRACT_VERSION.0,
            });
        }
        let chain: Vec<BlockHeader> = r.chain().collect();
        let expected = shadownet_hw::blocks();
        for (want, got) in expected.iter().zip(&chain) {
            if got.block_type != want.block_type || got.offset as usize != want.offset {
                return Err(DriverError::BadChain {
                    device: self.name.clone(),
                    detail: format!(
                        "expected block {} at {:#x}, found type {:#010x} at {:#x}",
                        want.name, want.offset, got.block_type, got.offset
                    ),
                });
            }
        }
        if chain.len() < expected.len() {
            return Err(DriverError::BadChain {
                device: self.name.clone(),
                detail: format!("{} blocks found, {} expected", chain.len(), expected.len()),
            });
        }
        if !r.ctrl().status().read().ready().bit() {
            return Err(DriverError::NotReady {
                device: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Reads the sequence tags and staged words the device holds, so the next command of
    /// each block uses a fresh tag (after open and after a reset).
    fn sync_state(&mut self) {
        let r = self.dev.regs();
        self.ctrl_seq = r.ctrl().status().read().seq().bits();
        self.tbl_seq = r.tbl_cmd().status().read().seq().bits();
        self.mirror_seq = r.mirror().status().read().seq().bits();
        self.counter_seq = r.counters().status().read().seq().bits();
        for i in 0..WINDOW_WORDS {
            self.staged_key[i] = r.tbl_cmd().key(i).read().bits();
            self.staged_value[i] = r.tbl_cmd().value(i).read().bits();
        }
    }

    /// What the device says it is.
    pub fn identify(&self) -> Identity {
        let r = self.regs();
        let id = r.id();
        let v = id.dev_version().read();
        Identity {
            version: (v.major().bits(), v.minor().bits(), v.patch().bits()),
            caps: id.caps().read().bits(),
            build_id: id.build_id().read().bits(),
            num_vports: id.num_vports().read().bits(),
            num_sessions: id.num_sessions().read().bits(),
            clock_khz: id.clock_khz().read().bits(),
            uplink_gbps: r.port().uplink_gbps().read().bits(),
            capacities: TableId::ALL
                .iter()
                .map(|&t| (t, r.tbl_cmd().capacity(t as usize).read().bits()))
                .collect(),
            blocks: r.chain().collect(),
            reset_count: r.ctrl().reset_count().read().bits(),
        }
    }

    /// Waits until `done` holds, relaxing the device between polls.
    pub(super) fn wait(
        &self,
        block: &'static str,
        op: &'static str,
        done: impl Fn(&RegisterView<'_>) -> bool,
    ) -> Result<(), DriverError> {
        let started = Instant::now();
        let mut polls: u32 = 0;
        loop {
            if done(&self.regs()) {
                fence(Ordering::Acquire);
                return Ok(());
            }
            self.dev.relax();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) && started.elapsed() > COMMAND_TIMEOUT {
                return Err(DriverError::Timeout {
                    device: self.name.clone(),
                    block,
                    op,
                    millis: started.elapsed().as_millis(),
                });
            }
        }
    }

    fn ctrl(&mut self, op: CtrlOp, name: &'static str) -> Result<(), DriverError> {
        self.ctrl_seq = self.ctrl_seq.wrapping_add(1);
        let seq = self.ctrl_seq;
        fence(Ordering::Release);
        self.regs()
            .ctrl()
            .cmd()
            .write(|w| w.op().variant(op).seq().set(seq));
        self.wait("CTRL", name, |r| {
            r.ctrl().status().read().seq().bits() == seq
        })?;
        let result = self.regs().ctrl().status().read().result().bits();
        if result != CmdResult::Ok as u8 {
            return Err(DriverError::Refused {
                device: self.name.clone(),
                what: format!("CTRL {name}"),
                result: result_name(result_code(result)),
            });
        }
        Ok(())
    }

    /// Resets the device: every table, session and counter is cleared and the configuration
    /// returns to its reset values (pipeline disabled).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        tracing::debug!(device = %self.name, "reset");
        self.ctrl(CtrlOp::Reset, "reset")?;
        // The reset disabled the ring; its memory is released.
        self.ring = None;
        self.telemetry = None;
        self.sync_state();
        Ok(())
    }

    /// Sets the substrate addressing and latches it (with the current enable/trace bits).
    pub fn configure_port(&mut self, cfg: &PortConfig) -> Result<(), DriverError> {
        {
            let r = self.regs();
            let p = r.port();
            let m = cfg.local_mac.0;
            p.local_mac_lo()
                .write(|w| w.set(u32::from_le_bytes([m[0], m[1], m[2], m[3]])));
            p.local_mac_hi()
                .write(|w| w.set(u32::from_le_bytes([m[4], m[5], 0, 0])));
            p.local_ipv4()
                .write(|w| w.set(cfg.local_ipv4.map(bits_of).unwrap_or(0)));
            let v6 = cfg.local_ipv6.map(|a| a.octets()).unwrap_or([0; 16]);
            for i in 0..4 {
                let c = &v6[i * 4..i * 4 + 4];
                p.local_ipv6(i)
                    .write(|w| w.set(u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
            p.tunnel_ports()
                .write(|w| w.vxlan().set(cfg.vxlan_port).geneve().set(cfg.geneve_port));
            p.uplink_mtu().write(|w| w.set(cfg.uplink_mtu));
        }
        self.ctrl(CtrlOp::ApplyConfig, "apply_config")
    }

    /// Turns forwarding (and the per-packet trace) on or off.
    pub fn set_enabled(&mut self, enabled: bool, trace: bool) -> Result<(), DriverError> {
        self.regs()
            .ctrl()
            .config()
            .write(|w| w.enable().bit(enabled).trace().bit(trace));
        self.ctrl(CtrlOp::ApplyConfig, "apply_config")
    }

    fn table_cmd(
        &mut self,
        table: TableId,
        op: TableOp,
        index: u32,
        key: &Window,
        value: &Window,
    ) -> Result<Option<Reply>, DriverError> {
        {
            let r = self.dev.regs();
            let t = r.tbl_cmd();
            t.table().write(|w| w.id().variant(reg_table(table)));
            t.index().write(|w| w.set(index));
            for i in 0..WINDOW_WORDS {
                if self.staged_key[i] != key[i] {
                    t.key(i).write(|w| w.set(key[i]));
                    self.staged_key[i] = key[i];
                }
                if self.staged_value[i] != value[i] {
                    t.value(i).write(|w| w.set(value[i]));
                    self.staged_value[i] = value[i];
                }
            }
        }
        self.tbl_seq = self.tbl_seq.wrapping_add(1);
        let seq = self.tbl_seq;
        tracing::trace!(device = %self.name, %table, op = op_name(op), index, seq, "table command");
        fence(Ordering::Release);
        self.regs()
            .tbl_cmd()
            .cmd()
            .write(|w| w.op().variant(op).seq().set(seq));
        self.wait("TBL_CMD", op_name(op), |r| {
            r.tbl_cmd().status().read().seq().bits() == seq
        })?;
        let r = self.regs();
        let t = r.tbl_cmd();
        match t.status().read().result().variant() {
            Some(CmdResult::Ok) => {
                let valid = t.result_flags().read().valid().bit();
                let mut reply = Reply {
                    index: t.result_index().read().bits(),
                    valid,
                    key: [0; WINDOW_WORDS],
                    value: [0; WINDOW_WORDS],
                };
                if valid {
                    for i in 0..WINDOW_WORDS {
                        reply.key[i] = t.result_key(i).read().bits();
                        reply.value[i] = t.result_value(i).read().bits();
                    }
                }
                Ok(Some(reply))
            }
            Some(CmdResult::NotFound) => Ok(None),
            Some(CmdResult::Full) => Err(DriverError::TableFull {
                device: self.name.clone(),
                table,
            }),
            other => Err(DriverError::Refused {
                device: self.name.clone(),
                what: format!("{} on table {table}", op_name(op)),
                result: result_name(other),
            }),
        }
    }

    fn check_index(&self, table: TableId, index: u32) -> Result<(), DriverError> {
        let capacity = table.capacity();
        if index >= capacity {
            return Err(DriverError::IndexOutOfRange {
                device: self.name.clone(),
                table,
                index,
                capacity,
            });
        }
        Ok(())
    }

    fn write_indexed(
        &mut self,
        table: TableId,
        index: u32,
        key: &Window,
        value: &Window,
    ) -> Result<(), DriverError> {
        self.check_index(table, index)?;
        self.table_cmd(table, TableOp::Write, index, key, value)
            .map(|_| ())
    }

    /// Deletes slot `index` of an indexed table (VPORT, ACL, MIRROR_FILTER); returns whether
    /// it held an entry.
    pub fn delete_slot(&mut self, table: TableId, index: u32) -> Result<bool, DriverError> {
        self.check_index(table, index)?;
        let zero = [0; WINDOW_WORDS];
        Ok(self
            .table_cmd(table, TableOp::Delete, index, &zero, &zero)?
            .is_some())
    }

    fn write_exact(
        &mut self,
        table: TableId,
        key: &Window,
        value: &Window,
    ) -> Result<u32, DriverError> {
        let reply = self.table_cmd(table, TableOp::Write, 0, key, value)?;
        Ok(reply.map(|r| r.index).unwrap_or(0))
    }

    fn delete_exact(&mut self, table: TableId, key: &Window) -> Result<bool, DriverError> {
        Ok(self
            .table_cmd(table, TableOp::Delete, 0, key, &[0; WINDOW_WORDS])?
            .is_some())
    }

    fn lookup_exact(
        &mut self,
        table: TableId,
        key: &Window,
    ) -> Result<Option<Window>, DriverError> {
        Ok(self
            .table_cmd(table, TableOp::Lookup, 0, key, &[0; WINDOW_WORDS])?
            .map(|r| r.value))
    }

    /// Binds VF `port` to a VM.
    pub fn write_vport(&mut self, port: u16, entry: &VportEntry) -> Result<(), DriverError> {
        let mut v = [0u8; shadownet_hw::layout::vport::VALUE_LEN];
        entry.emit(&mut v);
        VportEntry::parse(&v).map_err(invalid("vport entry"))?;
        self.write_indexed(TableId::Vport, port as u32, &[0; WINDOW_WORDS], &window(&v))
    }

    /// Programs a virtual network.
    pub fn write_vni(&mut self, vni: u32, entry: &VniEntry) -> Result<(), DriverError> {
        let mut k = [0u8; shadownet_hw::layout::vni::KEY_LEN];
        VniKey { vni }.emit(&mut k);
        VniKey::parse(&k).map_err(invalid("VNI"))?;
        let mut v = [0u8; shadownet_hw::layout::vni::VALUE_LEN];
        entry.emit(&mut v);
        VniEntry::parse(&v).map_err(invalid("VNI entry"))?;
        self.write_exact(TableId::Vni, &window(&k), &window(&v))
            .map(|_| ())
    }

    /// Removes a virtual network; returns whether it existed.
    pub fn delete_vni(&mut self, vni: u32) -> Result<bool, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::vni::KEY_LEN];
        VniKey { vni }.emit(&mut k);
        self.delete_exact(TableId::Vni, &window(&k))
    }

    /// Writes ACL rule `slot`.
    pub fn write_acl(&mut self, slot: u32, rule: &AclRule) -> Result<(), DriverError> {
        rule.matches.validate().map_err(invalid("ACL rule"))?;
        let mut k = [0u8; rule::LEN];
        rule.matches.emit(&mut k);
        let mut v = [0u8; shadownet_hw::layout::acl::VALUE_LEN];
        rule.action.emit(&mut v);
        self.write_indexed(TableId::Acl, slot, &window(&k), &window(&v))
    }

    /// Writes a map entry; returns the slot the device placed it in.
    pub fn write_map(&mut self, key: &MapKey, value: &MapValue) -> Result<u32, DriverError> {
        let (k, v) = map_words(key, value)?;
        self.write_exact(TableId::Map, &k, &v)
    }

    /// Removes a map entry; returns whether it existed.
    pub fn delete_map(&mut self, key: &MapKey) -> Result<bool, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::map::KEY_LEN];
        key.emit(&mut k);
        self.delete_exact(TableId::Map, &window(&k))
    }

    /// Looks a map entry up in the device.
    pub fn lookup_map(&mut self, key: &MapKey) -> Result<Option<MapValue>, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::map::KEY_LEN];
        key.emit(&mut k);
        let Some(w) = self.lookup_exact(TableId::Map, &window(&k))? else {
            return Ok(None);
        };
        let all: [u8; 64] = words_to_bytes(&w);
        let mut v = [0u8; shadownet_hw::layout::map::VALUE_LEN];
        v.copy_from_slice(&all[..shadownet_hw::layout::map::VALUE_LEN]);
        MapValue::parse(&v)
            .map(Some)
            .map_err(invalid("map entry read back"))
    }

    /// Looks a virtual network up in the device.
    pub fn lookup_vni(&mut self, vni: u32) -> Result<Option<VniEntry>, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::vni::KEY_LEN];
        VniKey { vni }.emit(&mut k);
        let Some(w) = self.lookup_exact(TableId::Vni, &window(&k))? else {
            return Ok(None);
        };
        let all: [u8; 64] = words_to_bytes(&w);
        let mut v = [0u8; shadownet_hw::layout::vni::VALUE_LEN];
        v.copy_from_slice(&all[..shadownet_hw::layout::vni::VALUE_LEN]);
        VniEntry::parse(&v)
            .map(Some)
            .map_err(invalid("VNI entry read back"))
    }

    /// Looks a production-to-shadow map entry up in the device.
    pub fn lookup_shadow_map(
        &mut self,
        key: &ShadowMapKey,
    ) -> Result<Option<ShadowMapValue>, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::shadow_map::KEY_LEN];
        key.emit(&mut k);
        let Some(w) = self.lookup_exact(TableId::ShadowMap, &window(&k))? else {
            return Ok(None);
        };
        let all: [u8; 64] = words_to_bytes(&w);
        let mut v = [0u8; shadownet_hw::layout::shadow_map::VALUE_LEN];
        v.copy_from_slice(&all[..shadownet_hw::layout::shadow_map::VALUE_LEN]);
        ShadowMapValue::parse(&v)
            .map(Some)
            .map_err(invalid("shadow map entry read back"))
    }

    /// Writes mirror filter `slot`.
    pub fn write_mirror_filter(
        &mut self,
        slot: u32,
        filter: &MirrorFilter,
    ) -> Result<(), DriverError> {
        filter
            .matches
            .validate()
            .map_err(invalid("mirror filter"))?;
        let mut k = [0u8; rule::LEN];
        filter.matches.emit(&mut k);
        let mut v = [0u8; shadownet_hw::layout::mirror_filter::VALUE_LEN];
        filter.action.emit(&mut v);
        shadownet_hw::layout::mirror_filter::MirrorAction::parse(&v)
            .map_err(invalid("mirror filter action"))?;
        self.write_indexed(TableId::MirrorFilter, slot, &window(&k), &window(&v))
    }

    /// Writes a production-to-shadow map entry.
    pub fn write_shadow_map(
        &mut self,
        key: &ShadowMapKey,
        value: &ShadowMapValue,
    ) -> Result<u32, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::shadow_map::KEY_LEN];
        key.emit(&mut k);
        ShadowMapKey::parse(&k).map_err(invalid("shadow map key"))?;
        let mut v = [0u8; shadownet_hw::layout::shadow_map::VALUE_LEN];
        value.emit(&mut v);
        ShadowMapValue::parse(&v).map_err(invalid("shadow map entry"))?;
        self.write_exact(TableId::ShadowMap, &window(&k), &window(&v))
    }

    /// Removes a production-to-shadow map entry; returns whether it existed.
    pub fn delete_shadow_map(&mut self, key: &ShadowMapKey) -> Result<bool, DriverError> {
        let mut k = [0u8; shadownet_hw::layout::shadow_map::KEY_LEN];
        key.emit(&mut k);
        self.delete_exact(TableId::ShadowMap, &window(&k))
    }

    /// Removes every entry of a table.
    pub fn clear_table(&mut self, table: TableId) -> Result<(), DriverError> {
        let zero = [0; WINDOW_WORDS];
        self.table_cmd(table, TableOp::Clear, 0, &zero, &zero)
            .map(|_| ())
    }

    /// Reads slot `index` of any table.
    pub fn read_slot(
        &mut self,
        table: TableId,
        index: u32,
    ) -> Result<Option<RawEntry>, DriverError> {
        self.check_index(table, index)?;
        let zero = [0; WINDOW_WORDS];
        Ok(self
            .table_cmd(table, TableOp::ReadSlot, index, &zero, &zero)?
            .filter(|r| r.valid)
            .map(|r| RawEntry {
                index: r.index,
                key: words_to_bytes(&r.key),
                value: words_to_bytes(&r.value),
            }))
    }

    /// Every occupied slot of a table, read back from the device. Stops early once the
    /// occupancy the device reports has been found.
    pub fn dump(&mut self, table: TableId) -> Result<Vec<RawEntry>, DriverError> {
        let occupancy = self.occupancy(table);
        let mut out = Vec::with_capacity(occupancy as usize);
        for index in 0..table.capacity() {
            if out.len() as u32 >= occupancy {
                break;
            }
            if let Some(e) = self.read_slot(table, index)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Occupied slots of a table, as the device last reported.
    pub fn occupancy(&self, table: TableId) -> u32 {
        self.regs()
            .tbl_cmd()
            .occupancy(table as usize)
            .read()
            .bits()
    }

    /// Changes applied to tables since reset.
    pub fn generation(&self) -> u32 {
        self.regs().tbl_cmd().generation().read().bits()
    }

    fn session_cmd(
        &mut self,
        s: u16,
        op: SessionOp,
        name: &'static str,
    ) -> Result<(), DriverError> {
        if s as usize >= NUM_SESSIONS {
            return Err(DriverError::NoSuchSession {
                device: self.name.clone(),
                session: s,
                count: NUM_SESSIONS as u16,
            });
        }
        self.regs().mirror().session().write(|w| w.set(s as u32));
        self.mirror_seq = self.mirror_seq.wrapping_add(1);
        let seq = self.mirror_seq;
        fence(Ordering::Release);
        self.regs()
            .mirror()
            .cmd()
            .write(|w| w.op().variant(op).seq().set(seq));
        self.wait("MIRROR", name, |r| {
            r.mirror().status().read().seq().bits() == seq
        })?;
        let result = self.regs().mirror().status().read().result().bits();
        if result != CmdResult::Ok as u8 {
            return Err(DriverError::Refused {
                device: self.name.clone(),
                what: format!("mirror session {s} {name}"),
                result: result_name(result_code(result)),
            });
        }
        Ok(())
    }

    /// Configures mirror session `s` (committed atomically).
    pub fn configure_session(&mut self, s: u16, cfg: &MirrorSession) -> Result<(), DriverError> {
        let mut b = [0u8; session::LEN];
        cfg.emit(&mut b);
        MirrorSession::parse(&b).map_err(invalid("mirror session"))?;
        let words: [u32; session::WORDS] = bytes_to_words(&b);
        {
            let r = self.regs();
            for (i, w) in words.iter().enumerate() {
                r.mirror().stage(i).write(|x| x.set(*w));
            }
        }
        self.session_cmd(s, SessionOp::Commit, "commit")
    }

    /// Reads mirror session `s` back.
    pub fn fetch_session(&mut self, s: u16) -> Result<MirrorSession, DriverError> {
        self.session_cmd(s, SessionOp::Fetch, "fetch")?;
        let r = self.regs();
        let mut words = [0u32; session::WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = r.mirror().fetched(i).read().bits();
        }
        let b: [u8; session::LEN] = words_to_bytes(&words);
        MirrorSession::parse(&b).map_err(invalid("mirror session read back"))
    }

    /// Disables mirror session `s`.
    pub fn disable_session(&mut self, s: u16) -> Result<(), DriverError> {
        self.session_cmd(s, SessionOp::Disable, "disable")
    }

    fn counter_cmd(&mut self, op: CounterOp, name: &'static str) -> Result<(), DriverError> {
        self.counter_seq = self.counter_seq.wrapping_add(1);
        let seq = self.counter_seq;
        fence(Ordering::Release);
        self.regs()
            .counters()
            .cmd()
            .write(|w| w.op().variant(op).seq().set(seq));
        self.wait("COUNTERS", name, |r| {
            r.counters().status().read().seq().bits() == seq
        })?;
        let result = self.regs().counters().status().read().result().bits();
        if result != CmdResult::Ok as u8 {
            return Err(DriverError::Refused {
                device: self.name.clone(),
                what: format!("COUNTERS {name}"),
                result: result_name(result_code(result)),
            });
        }
        Ok(())
    }

    /// Latches every counter at one instant and reads them.
    pub fn snapshot_counters(&mut self) -> Result<CounterSnapshot, DriverError> {
        self.counter_cmd(CounterOp::Snapshot, "snapshot")?;
        let r = self.regs();
        let c = r.counters();
        let cycle = (c.snapshot_cycle_hi().read().bits() as u64) << 32
            | c.snapshot_cycle_lo().read().bits() as u64;
        let values = (0..NUM_COUNTERS)
            .map(|i| {
                (c.counter(i).hi().read().bits() as u64) << 32
                    | c.counter(i).lo().read().bits() as u64
            })
            .collect();
        Ok(CounterSnapshot { cycle, values })
    }

    /// Zeroes every counter.
    pub fn clear_counters(&mut self) -> Result<(), DriverError> {
        self.counter_cmd(CounterOp::Clear, "clear")
    }
}

fn map_words(key: &MapKey, value: &MapValue) -> Result<(Window, Window), DriverError> {
    let mut k = [0u8; shadownet_hw::layout::map::KEY_LEN];
    key.emit(&mut k);
    MapKey::parse(&k).map_err(invalid("map key"))?;
    let mut v = [0u8; shadownet_hw::layout::map::VALUE_LEN];
    value.emit(&mut v);
    MapValue::parse(&v).map_err(invalid("map entry"))?;
    Ok((window(&k), window(&v)))
}
