//! The desired state of every tenant, loaded from the store, changed in memory and compiled
//! for the NIC before a change is committed.

use std::collections::{BTreeMap, BTreeSet};

use shadownet_hw::NUM_VPORTS;

use super::{ControlError, SHADOW_VNI_BASE, Usage, from_json, kind, object_id};
use crate::{
    driver::PortConfig,
    model::{
        Capacity, Mitigation, MitigationState, Network, Shadow, ShadowState, Tenant,
        compile::{Compiled, SlotAllocator, TenantState, compile, local_node},
    },
    store::Store,
};

/// One tenant's objects.
#[derive(Clone, Debug)]
pub struct TenantWorld {
    /// The tenant.
    pub tenant: Tenant,
    /// Networks by name, with their current version.
    pub networks: BTreeMap<String, (u64, Network)>,
    /// Shadows by name: version, shadow, and the production network as captured.
    pub shadows: BTreeMap<String, (u64, Shadow, Network)>,
    /// Mitigations by id, with their version, whatever their state.
    pub mitigations: BTreeMap<String, (u64, Mitigation)>,
}

/// Every tenant's desired state.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Tenants by name.
    pub tenants: BTreeMap<String, TenantWorld>,
}

impl World {
    /// Loads everything from the store.
    pub fn load(store: &Store) -> Result<World, ControlError> {
        let mut w = World::default();
        for o in store.list(kind::TENANT, None)? {
            let tenant: Tenant = from_json(o.body)?;
            w.tenants.insert(
                o.id.clone(),
                TenantWorld {
                    tenant,
                    networks: BTreeMap::new(),
                    shadows: BTreeMap::new(),
                    mitigations: BTreeMap::new(),
                },
            );
        }
        for o in store.list(kind::NETWORK, None)? {
            let net: Network = from_json(o.body)?;
            if let Some(t) = w.tenants.get_mut(&o.tenant) {
                t.networks.insert(net.name.clone(), (o.version, net));
            }
        }
        for o in store.list(kind::SHADOW, None)? {
            let shadow: Shadow = from_json(o.body)?;
            let net_id = object_id(&o.tenant, &shadow.spec.network);
            let captured = store
                .version(kind::NETWORK, &net_id, shadow.network_version)?
                .and_then(|r| r.body)
                .ok_or_else(|| {
                    ControlError::Conflict(format!(
                        "shadow '{}' was captured from version {} of network '{}', which the store no longer has",
                        shadow.name, shadow.network_version, shadow.spec.network
                    ))
                })?;
            let captured: Network = from_json(captured)?;
            if let Some(t) = w.tenants.get_mut(&o.tenant) {
                t.shadows
                    .insert(shadow.name.clone(), (o.version, shadow, captured));
            }
        }
        for o in store.list(kind::MITIGATION, None)? {
            let m: Mitigation = from_json(o.body)?;
            if let Some(t) = w.tenants.get_mut(&o.tenant) {
                t.mitigations.insert(m.id.clone(), (o.version, m));
            }
        }
        Ok(w)
    }

    /// Compiles the active part of the world for one NIC.
    pub fn compile(
        &self,
        port: &PortConfig,
        slots: &mut SlotAllocator,
    ) -> Result<Compiled, ControlError> {
        let states: Vec<TenantState<'_>> = self
            .tenants
            .iter()
            .map(|(name, t)| TenantState {
                tenant: name,
                networks: t.networks.values().map(|(_, n)| n).collect(),
                shadows: t
                    .shadows
                    .values()
                    .filter(|(_, s, _)| s.state == ShadowState::Active)
                    .map(|(_, s, n)| (s, n))
                    .collect(),
                blocks: t
                    .mitigations
                    .values()
                    .filter(|(_, m)| m.state == MitigationState::Active)
                    .map(|(_, m)| m)
                    .collect(),
            })
            .collect();
        Ok(compile(port, &states, slots)?)
    }

    /// A tenant's network and its version.
    pub fn network(&self, tenant: &str, name: &str) -> Option<(u64, &Network)> {
        self.tenants
            .get(tenant)?
            .networks
            .get(name)
            .map(|(v, n)| (*v, n))
    }

    /// Inserts or replaces a network.
    pub fn put_network(&mut self, tenant: &str, net: Network, version: u64) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.networks.insert(net.name.clone(), (version + 1, net));
        }
    }

    /// Removes a network.
    pub fn remove_network(&mut self, tenant: &str, name: &str) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.networks.remove(name);
        }
    }

    /// A tenant's shadow.
    pub fn shadow(&self, tenant: &str, name: &str) -> Option<&(u64, Shadow, Network)> {
        self.tenants.get(tenant)?.shadows.get(name)
    }

    /// A tenant's mitigation and its version.
    pub fn mitigation(&self, tenant: &str, id: &str) -> Result<(u64, Mitigation), ControlError> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.mitigations.get(id))
            .cloned()
            .ok_or_else(|| ControlError::NotFound {
                kind: "mitigation",
                name: id.to_string(),
            })
    }

    /// Inserts or replaces a shadow.
    pub fn put_shadow(&mut self, tenant: &str, shadow: Shadow, version: u64, captured: Network) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.shadows
                .insert(shadow.name.clone(), (version + 1, shadow, captured));
        }
    }

    /// Removes a shadow.
    pub fn remove_shadow(&mut self, tenant: &str, name: &str) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.shadows.remove(name);
        }
    }

    /// Inserts or replaces a mitigation (`version`: the one it replaces, 0 for a new one).
    pub fn put_mitigation(&mut self, tenant: &str, m: Mitigation, version: u64) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.mitigations.insert(m.id.clone(), (version + 1, m));
        }
    }

    /// A tenant's shadow by its VNI.
    pub fn shadow_by_vni(&self, vni: u32) -> Option<(&str, &(u64, Shadow, Network))> {
        self.tenants.iter().find_map(|(tn, t)| {
            t.shadows
                .values()
                .find(|(_, s, _)| s.vni == vni)
                .map(|x| (tn.as_str(), x))
        })
    }

    /// Names of the live shadows of a network.
    pub fn shadows_of(&self, tenant: &str, network: &str) -> Vec<String> {
        self.tenants
            .get(tenant)
            .map(|t| {
                t.shadows
                    .values()
                    .filter(|(_, s, _)| s.spec.network == network)
                    .map(|(_, s, _)| s.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many automation rules watch a network.
    pub fn automations_of(
        &self,
        store: &Store,
        tenant: &str,
        network: &str,
    ) -> Result<usize, ControlError> {
        let mut n = 0;
        for o in store.list(kind::AUTOMATION, Some(tenant))? {
            if o.body.get("network").and_then(|v| v.as_str()) == Some(network) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every VNI in use, with who uses it.
    pub fn vnis(&self) -> BTreeMap<u32, String> {
        let mut out = BTreeMap::new();
        for (tn, t) in &self.tenants {
            for (_, n) in t.networks.values() {
                out.insert(n.vni, format!("network '{tn}/{}'", n.name));
            }
            for (_, s, _) in t.shadows.values() {
                out.insert(s.vni, format!("shadow '{tn}/{}'", s.name));
            }
        }
        out
    }

    /// Refuses a network whose VNI another network or shadow on the fabric uses, or that
    /// falls in the range reserved for shadows.
    pub fn check_vni(&self, tenant: &str, net: &Network) -> Result<(), ControlError> {
        if net.vni >= SHADOW_VNI_BASE {
            return Err(ControlError::field(
                "vni",
                format!(
                    "{} is in the range reserved for shadow networks ({SHADOW_VNI_BASE} and up)",
                    net.vni
                ),
            ));
        }
        let me = format!("network '{tenant}/{}'", net.name);
        match self.vnis().get(&net.vni) {
            Some(other) if *other != me => Err(ControlError::field(
                "vni",
                format!("{} is already used by another network", net.vni),
            )),
            _ => Ok(()),
        }
    }

    /// VFs in use by nodes and replicas, except those of `skip` (a network being replaced).
    pub fn used_vfs(&self, skip: Option<(&str, &str)>) -> BTreeSet<u16> {
        let mut used = BTreeSet::new();
        for (tn, t) in &self.tenants {
            for (_, n) in t.networks.values() {
                if Some((tn.as_str(), n.name.as_str())) == skip {
                    continue;
                }
                used.extend(n.nodes.iter().filter_map(|x| x.vf));
            }
            for (_, s, _) in t.shadows.values() {
                if s.state == ShadowState::Active {
                    used.extend(s.replicas.iter().filter_map(|r| r.vf));
                }
            }
        }
        used
    }

    /// Gives every node of `net` on this NIC a VF: the one it had in `previous` (by name) or
    /// the lowest free one. Nodes elsewhere have none.
    pub fn assign_vfs(
        &self,
        port: &PortConfig,
        tenant: &str,
        net: &mut Network,
        previous: Option<&Network>,
    ) -> Result<(), ControlError> {
        let mut used = self.used_vfs(Some((tenant, &net.name)));
        for (i, node) in net.nodes.iter_mut().enumerate() {
            if !local_node(port, &node.host) {
                if node.vf.is_some() {
                    return Err(ControlError::field(
                        format!("nodes/{i}/vf"),
                        format!(
                            "node '{}' runs on host {}, not on this NIC's host: it has no VF here",
                            node.name, node.host
                        ),
                    ));
                }
                continue;
            }
            let kept = previous
                .and_then(|p| p.nodes.iter().find(|n| n.name == node.name))
                .and_then(|n| n.vf);
            let vf = match node.vf.or(kept) {
                Some(vf) => {
                    if used.contains(&vf) {
                        return Err(ControlError::field(
                            format!("nodes/{i}/vf"),
                            format!("VF {vf} is already attached to another node"),
                        ));
                    }
                    vf
                }
                None => (0..NUM_VPORTS as u16)
                    .find(|v| !used.contains(v))
                    .ok_or_else(|| {
                        ControlError::Conflict(format!(
                            "this NIC has no free VF for node '{}' (all {NUM_VPORTS} are attached)",
                            node.name
                        ))
                    })?,
            };
            used.insert(vf);
            node.vf = Some(vf);
        }
        Ok(())
    }

    /// The lowest free VF.
    pub fn free_vf(&self, also_used: &BTreeSet<u16>) -> Option<u16> {
        let used = self.used_vfs(None);
        (0..NUM_VPORTS as u16).find(|v| !used.contains(v) && !also_used.contains(v))
    }

    /// What a tenant's shadows use of its limits (table entries and stored bytes are filled
    /// in by the caller).
    pub fn usage(&self, tenant: &str, uplink_mbps: u64) -> Usage {
        let mut u = Usage::default();
        if let Some(t) = self.tenants.get(tenant) {
            for (_, s, _) in t.shadows.values() {
                if s.state != ShadowState::Active {
                    continue;
                }
                u.shadows += 1;
                u.mirror_mbps += mirror_mbps(&s.spec.capacity, uplink_mbps);
                u.mirror_rules += s.spec.policy.rules.len() as u32;
            }
        }
        u
    }
}

/// The bandwidth a shadow may mirror: its policer, or the whole uplink when uncapped.
pub fn mirror_mbps(capacity: &Capacity, uplink_mbps: u64) -> u64 {
    if capacity.mbps == 0 {
        uplink_mbps
    } else {
        capacity.mbps as u64
    }
}
