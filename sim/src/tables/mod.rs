//! The NIC's tables as the model stores them, and the table commands that change them.
//!
//! Exact tables keep hardware-format memory (`shadownet_hw::table::exact`), maintained by the
//! firmware crate's code as the NIC's embedded cores would; rule tables keep their decoded
//! rules and compile them into a classifier the first time a packet needs it after a change.
//! The table commands themselves (validation, cuckoo maintenance) are the firmware's
//! (`shadownet_firmware::command`); [`Tables`] is the table hardware it drives
//! ([`TableHw`]). A command is applied whole between two packets, so no packet sees half of a
//! change.

mod exact;
mod memory;
mod rules;
#[cfg(test)]
mod tests;

use shadownet_firmware::command::{self, Command, ExactAccess, Outcome, TableHw};
use shadownet_hw::{
    device_regs::tbl_cmd::cmd::TableOp,
    layout::{
        WINDOW_WORDS, acl::AclAction, bytes_to_words, mirror_filter::MirrorAction, rule::RuleMatch,
        vport::VportEntry,
    },
    table::TableId,
};

pub use exact::{ExactStore, ExactView, Prefetched};
pub use rules::{Classifier, CompiledRule, PacketKey, RuleAction, RuleAnswer, RuleTable};

/// A KEY or VALUE register window.
pub type Window = [u32; WINDOW_WORDS];

/// A VF port binding with the words it was written with.
#[derive(Clone, Copy, Debug)]
pub struct VportSlot {
    /// The binding.
    pub entry: VportEntry,
    /// VALUE words as written.
    pub value: Window,
}

/// Every table of the NIC.
pub struct Tables {
    /// VF port bindings.
    pub vports: Vec<Option<VportSlot>>,
    /// Virtual networks.
    pub vni: ExactStore,
    /// ACL rules.
    pub acl: RuleTable<AclAction>,
    /// Overlay to substrate map.
    pub map: ExactStore,
    /// Mirror filters.
    pub mirror_filters: RuleTable<MirrorAction>,
    /// Production to shadow map.
    pub shadow_map: ExactStore,
}

impl Default for Tables {
    fn default() -> Self {
        Tables::new()
    }
}

impl Tables {
    /// Empty tables of the contract's sizes.
    pub fn new() -> Tables {
        Tables {
            vports: vec![None; TableId::Vport.capacity() as usize],
            vni: ExactStore::new(TableId::Vni),
            acl: RuleTable::new(TableId::Acl),
            map: ExactStore::new(TableId::Map),
            mirror_filters: RuleTable::new(TableId::MirrorFilter),
            shadow_map: ExactStore::with_filter(TableId::ShadowMap),
        }
    }

    /// The binding of VF port `v`, if any.
    #[inline]
    pub fn vport(&self, v: u16) -> Option<VportEntry> {
        self.vports.get(v as usize)?.as_ref().map(|s| s.entry)
    }

    /// Removes every entry of every table.
    pub fn clear_all(&mut self) {
        for t in TableId::ALL {
            self.clear(t);
        }
    }

    fn clear(&mut self, t: TableId) {
        match t {
            TableId::Vport => self.vports.iter_mut().for_each(|s| *s = None),
            TableId::Vni => self.vni.clear(),
            TableId::Acl => self.acl.clear(),
            TableId::Map => self.map.clear(),
            TableId::MirrorFilter => self.mirror_filters.clear(),
            TableId::ShadowMap => self.shadow_map.clear(),
        }
    }

    /// Occupied slots of a table.
    pub fn occupancy(&self, t: TableId) -> u32 {
        match t {
            TableId::Vport => self.vports.iter().filter(|s| s.is_some()).count() as u32,
            TableId::Vni => self.vni.occupancy(),
            TableId::Acl => self.acl.occupancy(),
            TableId::Map => self.map.occupancy(),
            TableId::MirrorFilter => self.mirror_filters.occupancy(),
            TableId::ShadowMap => self.shadow_map.occupancy(),
        }
    }

    /// Executes one table command as the firmware does for the register interface and the
    /// command ring (without the register protocol): for tests and benchmarks that program
    /// the model directly.
    pub fn execute(
        &mut self,
        table: u8,
        op: Option<TableOp>,
        index: u32,
        key: &Window,
        value: &Window,
    ) -> Outcome {
        let cmd = Command {
            // An op the register field cannot name is answered BAD_OP by the firmware.
            op: op.map_or(u8::MAX, |op| op as u8),
            table,
            index,
            key: *key,
            value: *value,
        };
        command::execute(self, &cmd)
    }
}

impl TableHw for Tables {
    fn exact(&mut self, table: TableId) -> Option<ExactAccess<'_>> {
        match table {
            TableId::Vni => Some(self.vni.access()),
            TableId::Map => Some(self.map.access()),
            TableId::ShadowMap => Some(self.shadow_map.access()),
            TableId::Vport | TableId::Acl | TableId::MirrorFilter => None,
        }
    }

    fn write_vport(&mut self, index: u32, entry: VportEntry, value: &Window) -> bool {
        let Some(slot) = self.vports.get_mut(index as usize) else {
            return false;
        };
        slot.replace(VportSlot {
            entry,
            value: *value,
        })
        .is_some()
    }

    fn write_acl(
        &mut self,
        index: u32,
        matches: RuleMatch,
        action: AclAction,
        key: &Window,
        value: &Window,
    ) -> bool {
        self.acl.write(index, matches, action, key, value)
    }

    fn write_mirror_filter(
        &mut self,
        index: u32,
        matches: RuleMatch,
        action: MirrorAction,
        key: &Window,
        value: &Window,
    ) -> bool {
        self.mirror_filters
            .write(index, matches, action, key, value)
    }

    fn delete_indexed(&mut self, table: TableId, index: u32) -> bool {
        match table {
            TableId::Vport => self
                .vports
                .get_mut(index as usize)
                .is_some_and(|s| s.take().is_some()),
            TableId::Acl => self.acl.delete(index),
            TableId::MirrorFilter => self.mirror_filters.delete(index),
            TableId::Vni | TableId::Map | TableId::ShadowMap => false,
        }
    }

    fn read_indexed(&self, table: TableId, index: u32) -> Option<(Window, Window)> {
        match table {
            TableId::Vport => self
                .vports
                .get(index as usize)?
                .map(|s| ([0; WINDOW_WORDS], s.value)),
            TableId::Acl => self.acl.words(index),
            TableId::MirrorFilter => self.mirror_filters.words(index),
            TableId::Vni | TableId::Map | TableId::ShadowMap => None,
        }
    }

    fn clear_indexed(&mut self, table: TableId) {
        self.clear(table);
    }

    fn occupancy(&self, table: TableId) -> u32 {
        Tables::occupancy(self, table)
    }
}

/// Words of a typed entry, for tests and tools that build commands.
pub fn to_window<const B: usize>(bytes: &[u8; B]) -> Window {
    let mut all = [0u8; 64];
    all[..B].copy_from_slice(bytes);
    bytes_to_words(&all)
}
