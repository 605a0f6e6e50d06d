//! Shadow lifecycle: create (by API or by an automation rule on an alert), change the mirror
//! policy or the analysis capacity, roll back, complete, expire, delete.
//!
//! Teardown is two-phase so that a crash in the middle finishes on the next start: the shadow
//! is first marked `completed`/`expired` (a version; it leaves the desired state, so the
//! reconciler removes its entries), the NIC's tables are read back to prove nothing of it
//! remains, and only then is every stored trace of it purged.

use std::collections::BTreeSet;

use serde::Serialize;
use shadownet_hw::NUM_SESSIONS;
use utoipa::ToSchema;

use super::{
    Caller, ControlError, Controller, Idempotency, QuotaExceeded, SHADOW_VNI_BASE, SyncReport,
    Versioned, World, from_json, kind, object_id, record_idem, to_json, world::mirror_mbps,
};
use crate::{
    driver::Device,
    model::{
        AlertReport, Automation, Capacity, MirrorPolicy, Replica, Shadow, ShadowSpec, ShadowState,
        Trigger,
        compile::local_node,
        validate::{validate_name, validate_shadow_spec},
    },
    store::Expect,
};

/// How long an idempotency record answers retries.
pub const IDEMPOTENCY_KEEP_MS: i64 = 24 * 3600 * 1000;

/// What tearing a shadow down did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Teardown {
    /// The shadow.
    pub shadow: String,
    /// Why it went: `completed`, `expired` or `deleted`.
    pub reason: String,
    /// NIC entries removed.
    pub entries_removed: u64,
    /// Entries of the shadow found on the NIC when the tables were read back (always 0: a
    /// teardown that finds any is an error).
    pub entries_left: u64,
    /// Stored bytes freed.
    pub bytes_freed: u64,
}

/// What an alert caused.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlertOutcome {
    /// Audit sequence number of the alert.
    pub audit_seq: u64,
    /// Shadows created by automation rules.
    pub shadows_created: Vec<String>,
    /// Rules that matched but did not fire because their shadow is still alive.
    pub already_active: Vec<String>,
}

impl<D: Device> Controller<D> {
    /// Creates a shadow of a production network: captures the network's current version,
    /// allocates a VNI and a mirror session, places a replica of every node on the node's own
    /// host (a VF of this NIC for local nodes, when one is free), and programs it.
    pub fn create_shadow(
        &mut self,
        caller: &Caller,
        spec: ShadowSpec,
        idem: Option<&Idempotency>,
    ) -> Result<(Versioned<Shadow>, SyncReport), ControlError> {
        let tenant = caller.tenant()?.to_string();
        let trigger = Trigger::Api {
            actor: caller.actor.clone(),
        };
        self.create_shadow_as(&tenant, &caller.actor, spec, trigger, idem)
    }

    fn create_shadow_as(
        &mut self,
        tenant: &str,
        actor: &str,
        mut spec: ShadowSpec,
        trigger: Trigger,
        idem: Option<&Idempotency>,
    ) -> Result<(Versioned<Shadow>, SyncReport), ControlError> {
        let limits = self.tenant_obj(tenant)?.object.limits;
        let mut world = World::load(&self.store)?;
        let (net_version, production) = world
            .network(tenant, &spec.network)
            .map(|(v, n)| (v, n.clone()))
            .ok_or_else(|| ControlError::NotFound {
                kind: "network",
                name: spec.network.clone(),
            })?;
        validate_shadow_spec(&spec, &production).map_err(ControlError::Invalid)?;
        let name = match &spec.name {
            Some(n) => {
                validate_name("shadow", n).map_err(|e| ControlError::Invalid(vec![e]))?;
                if world.shadow(tenant, n).is_some() {
                    return Err(ControlError::Exists {
                        kind: "shadow",
                        name: n.clone(),
                    });
                }
                n.clone()
            }
            None => (1..)
                .map(|i| format!("{}-shadow-{i}", spec.network))
                .find(|n| world.shadow(tenant, n).is_none())
                .unwrap_or_default(),
        };
        spec.name = Some(name.clone());

        // Limits, each refused with its name and by how much.
        let usage = world.usage(tenant, self.uplink_mbps());
        let quota = |limit: &str, allowed: u64, current: u64, add: u64| {
            QuotaExceeded::check(limit, allowed, current, current + add)
        };
        quota(
            "max_shadows",
            limits.max_shadows as u64,
            usage.shadows as u64,
            1,
        )?;
        QuotaExceeded::check(
            "max_shadow_lifetime_s",
            limits.max_shadow_lifetime_s,
            0,
            spec.ttl_s,
        )?;
        let mbps = mirror_mbps(&spec.capacity, self.uplink_mbps());
        quota(
            "max_mirror_mbps",
            limits.max_mirror_mbps as u64,
            usage.mirror_mbps,
            mbps,
        )?;
        quota(
            "max_mirror_rules",
            limits.max_mirror_rules as u64,
            usage.mirror_rules as u64,
            spec.policy.rules.len() as u64,
        )?;

        let used_vnis = world.vnis();
        let vni = (SHADOW_VNI_BASE..=shadownet_hw::layout::VNI_MAX)
            .find(|v| !used_vnis.contains_key(v))
            .ok_or_else(|| ControlError::Conflict("no free shadow VNI".into()))?;
        let used_sessions: BTreeSet<u16> = world
            .tenants
            .values()
            .flat_map(|t| t.shadows.values())
            .filter(|(_, s, _)| s.state == ShadowState::Active)
            .map(|(_, s, _)| s.session)
            .collect();
        let session = (0..NUM_SESSIONS as u16)
            .find(|s| !used_sessions.contains(s))
            .ok_or_else(|| {
                ControlError::Conflict(format!(
                    "all {NUM_SESSIONS} mirror sessions of this NIC are in use"
                ))
            })?;
        let mut taken = BTreeSet::new();
        let mut replicas = Vec::new();
        for node in &production.nodes {
            if spec.exclude_nodes.contains(&node.name) {
                continue;
            }
            let vf = if local_node(&self.port, &node.host) {
                match world.free_vf(&taken) {
                    Some(vf) => {
                        taken.insert(vf);
                        Some(vf)
                    }
                    // No VF left on this host: the node gets no replica, and copies to it go
                    // to the collector.
                    None => continue,
                }
            } else {
                None
            };
            replicas.push(Replica {
                node: node.name.clone(),
                host: node.host.clone(),
                host_mac: node.host_mac.clone(),
                vf,
            });
        }
        let now = self.now_ms();
        let spec_ttl_ms = i64::try_from(spec.ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let shadow = Shadow {
            name: name.clone(),
            spec,
            network_version: net_version,
            vni,
            session,
            replicas,
            state: ShadowState::Active,
            trigger,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(spec_ttl_ms),
        };
        world.put_shadow(tenant, shadow.clone(), 0, production);
        let body = to_json(&shadow)?;
        self.check_stored_bytes(tenant, body.to_string().len() as u64)?;
        let id = object_id(tenant, &name);
        let (meta, report) = self.change(&world, |tx| {
            let m = tx.put(kind::SHADOW, &id, tenant, &body, Expect::Absent, actor, "shadow created")?;
            tx.audit(
                Some(tenant),
                actor,
                "shadow.create",
                &id,
                &serde_json::json!({"vni": vni, "session": session, "network_version": net_version, "trigger": shadow.trigger}),
            )?;
            let out = Versioned::at(&m, shadow.clone());
            record_idem(tx, tenant, idem, 201, &out)?;
            Ok(m)
        })?;
        Ok((Versioned::at(&meta, shadow), report))
    }

    /// A shadow: the current version or an earlier one.
    pub fn get_shadow(
        &self,
        caller: &Caller,
        name: &str,
        version: Option<u64>,
    ) -> Result<Versioned<Shadow>, ControlError> {
        self.tenant_object(
            kind::SHADOW,
            ("shadow", "shadow version"),
            caller,
            name,
            version,
        )
    }

    /// The caller's shadows.
    pub fn list_shadows(&self, caller: &Caller) -> Result<Vec<Versioned<Shadow>>, ControlError> {
        self.tenant_objects(kind::SHADOW, caller)
    }

    /// A shadow's history, oldest first.
    pub fn shadow_history(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Vec<super::HistoryEntry>, ControlError> {
        let tenant = caller.tenant()?;
        let h = self.store.history(kind::SHADOW, &object_id(tenant, name))?;
        if h.is_empty() {
            return Err(ControlError::NotFound {
                kind: "shadow",
                name: name.into(),
            });
        }
        Ok(h.into_iter().map(Into::into).collect())
    }

    /// Changes a live shadow: `edit` gets its spec; limits are checked against the result.
    fn edit_shadow(
        &mut self,
        caller: &Caller,
        name: &str,
        action: &str,
        edit: impl FnOnce(&mut ShadowSpec),
    ) -> Result<(Versioned<Shadow>, SyncReport), ControlError> {
        let tenant = caller.tenant()?.to_string();
        let limits = self.tenant_obj(&tenant)?.object.limits;
        let mut world = World::load(&self.store)?;
        let (version, mut shadow, captured) =
            world
                .shadow(&tenant, name)
                .cloned()
                .ok_or_else(|| ControlError::NotFound {
                    kind: "shadow",
                    name: name.into(),
                })?;
        if shadow.state != ShadowState::Active {
            return Err(ControlError::Conflict(format!(
                "shadow '{name}' is {:?} and being torn down",
                shadow.state
            )));
        }
        let before = world.usage(&tenant, self.uplink_mbps());
        let uplink = self.uplink_mbps();
        let old_mbps = mirror_mbps(&shadow.spec.capacity, uplink);
        let old_rules = shadow.spec.policy.rules.len() as u64;
        edit(&mut shadow.spec);
        shadow.spec.name = Some(name.to_string());
        validate_shadow_spec(&shadow.spec, &captured).map_err(ControlError::Invalid)?;
        let new_mbps = mirror_mbps(&shadow.spec.capacity, uplink);
        let new_rules = shadow.spec.policy.rules.len() as u64;
        // Only growth is checked: lowering a shadow's capacity always goes through.
        let check = |limit: &str, allowed: u64, current: u64, old: u64, new: u64| {
            if new > old {
                QuotaExceeded::check(limit, allowed, current, current - old + new)
            } else {
                Ok(())
            }
        };
        check(
            "max_mirror_mbps",
            limits.max_mirror_mbps as u64,
            before.mirror_mbps,
            old_mbps,
            new_mbps,
        )?;
        check(
            "max_mirror_rules",
            limits.max_mirror_rules as u64,
            before.mirror_rules as u64,
            old_rules,
            new_rules,
        )?;
        world.put_shadow(&tenant, shadow.clone(), version, captured);
        let body = to_json(&shadow)?;
        self.check_stored_bytes(&tenant, body.to_string().len() as u64)?;
        let id = object_id(&tenant, name);
        let actor = caller.actor.clone();
        let (meta, report) = self.change(&world, |tx| {
            let m = tx.put(
                kind::SHADOW,
                &id,
                &tenant,
                &body,
                Expect::Version(version),
                &actor,
                action,
            )?;
            tx.audit(
                Some(&tenant),
                &actor,
                "shadow.update",
                &id,
                &serde_json::json!({"version": m.version, "change": action}),
            )?;
            Ok(m)
        })?;
        Ok((Versioned::at(&meta, shadow), report))
    }

    /// Raises or lowers a shadow's analysis capacity (mirror bandwidth, sampling) on its own.
    pub fn set_shadow_capacity(
        &mut self,
        caller: &Caller,
        name: &str,
        capacity: Capacity,
    ) -> Result<(Versioned<Shadow>, SyncReport), ControlError> {
        let msg = format!(
            "capacity set to {} Mbit/s, burst {} bytes, 1 in {}",
            capacity.mbps, capacity.burst_bytes, capacity.sample
        );
        self.edit_shadow(caller, name, &msg, |s| s.capacity = capacity)
    }

    /// Replaces a shadow's mirror policy.
    pub fn set_shadow_policy(
        &mut self,
        caller: &Caller,
        name: &str,
        policy: MirrorPolicy,
    ) -> Result<(Versioned<Shadow>, SyncReport), ControlError> {
        let msg = format!("mirror policy replaced ({} rules)", policy.rules.len());
        self.edit_shadow(caller, name, &msg, |s| s.policy = policy)
    }

    /// Re-applies an earlier version's mode, encapsulation, policy and capacity. The shadow's
    /// identity (VNI, session, replicas, lifetime) stays.
    pub fn rollback_shadow(
        &mut self,
        caller: &Caller,
        name: &str,
        to: u64,
    ) -> Result<(Versioned<Shadow>, SyncReport), ControlError> {
        let old = self.get_shadow(caller, name, Some(to))?.object.spec;
        self.edit_shadow(caller, name, &format!("rollback to version {to}"), |s| {
            s.mode = old.mode;
            s.encap = old.encap;
            s.policy = old.policy;
            s.capacity = old.capacity;
            s.collector = old.collector;
            s.analysis_nodes = old.analysis_nodes;
        })
    }

    /// Marks a shadow complete and tears it down.
    pub fn complete_shadow(
        &mut self,
        caller: &Caller,
        name: &str,
    ) -> Result<Teardown, ControlError> {
        let tenant = caller.tenant()?.to_string();
        self.teardown(&tenant, name, ShadowState::Completed, &caller.actor)
    }

    /// Deletes a shadow now, whatever its state.
    pub fn delete_shadow(&mut self, caller: &Caller, name: &str) -> Result<Teardown, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let mut t = self.teardown(&tenant, name, ShadowState::Completed, &caller.actor)?;
        t.reason = "deleted".into();
        Ok(t)
    }

    /// Tears down every shadow whose lifetime has run out, and finishes teardowns a crash
    /// interrupted. Called by the daemon's timer; expiry times are in the store, so they
    /// survive restarts.
    pub fn expire_due(&mut self) -> Result<Vec<Teardown>, ControlError> {
        let now = self.now_ms();
        // Retries come within minutes; a day-old idempotency record only takes space.
        self.store
            .transact(|tx| tx.expire_idempotent(now - IDEMPOTENCY_KEEP_MS))?;
        let world = World::load(&self.store)?;
        let mut due = Vec::new();
        for (tn, t) in &world.tenants {
            for (_, s, _) in t.shadows.values() {
                if s.state != ShadowState::Active {
                    due.push((tn.clone(), s.name.clone(), s.state));
                } else if s.expires_at_ms <= now {
                    due.push((tn.clone(), s.name.clone(), ShadowState::Expired));
                }
            }
        }
        let mut out = Vec::new();
        for (tenant, name, state) in due {
            out.push(self.teardown(&tenant, &name, state, "timer")?);
        }
        for m in self.expire_mitigations()? {
            tracing::info!(mitigation = %m, "block rule expired and removed from the NIC");
        }
        Ok(out)
    }

    fn teardown(
        &mut self,
        tenant: &str,
        name: &str,
        state: ShadowState,
        actor: &str,
    ) -> Result<Teardown, ControlError> {
        let mut world = World::load(&self.store)?;
        let (version, mut shadow, captured) =
            world
                .shadow(tenant, name)
                .cloned()
                .ok_or_else(|| ControlError::NotFound {
                    kind: "shadow",
                    name: name.into(),
                })?;
        let id = object_id(tenant, name);
        let reason = match state {
            ShadowState::Expired => "expired",
            _ => "completed",
        };
        let removed = if shadow.state == ShadowState::Active {
            // Phase 1: a version that takes the shadow out of the desired state.
            shadow.state = state;
            world.put_shadow(tenant, shadow.clone(), version, captured);
            let body = to_json(&shadow)?;
            let (_, report) = self.change(&world, |tx| {
                let m = tx.put(
                    kind::SHADOW,
                    &id,
                    tenant,
                    &body,
                    Expect::Version(version),
                    actor,
                    reason,
                )?;
                tx.audit(
                    Some(tenant),
                    actor,
                    &format!("shadow.{reason}"),
                    &id,
                    &serde_json::json!({"version": m.version}),
                )?;
                Ok(m)
            })?;
            report.removed
        } else {
            // A teardown a crash interrupted: make sure the NIC is in step first.
            self.resync()?.1.removed
        };
        // Phase 2: prove the NIC holds nothing of it, then forget it.
        let left = self.shadow_entries_on_nic(shadow.vni, shadow.session)?;
        if left > 0 {
            return Err(ControlError::Conflict(format!(
                "shadow '{name}': {left} entries of VNI {} / session {} are still on the NIC after teardown",
                shadow.vni, shadow.session
            )));
        }
        let freed = self.store.transact(|tx| {
            let freed = tx.purge(kind::SHADOW, &id)?;
            tx.audit(
                Some(tenant),
                actor,
                "shadow.purge",
                &id,
                &serde_json::json!({"reason": reason, "bytes_freed": freed, "vni": shadow.vni, "session": shadow.session}),
            )?;
            Ok(freed)
        })?;
        Ok(Teardown {
            shadow: name.to_string(),
            reason: reason.into(),
            entries_removed: removed,
            entries_left: left,
            bytes_freed: freed,
        })
    }

    /// Reads the NIC's tables back and counts entries that belong to a shadow network or a
    /// mirror session.
    pub fn shadow_entries_on_nic(&mut self, vni: u32, session: u16) -> Result<u64, ControlError> {
        let t = crate::reconcile::read_back(&mut self.nic)?;
        let n = t
            .vnis
            .iter()
            .filter(|(v, e)| **v == vni || e.production_vni == Some(vni))
            .count()
            + t.vports.values().filter(|e| e.vni == vni).count()
            + t.map.keys().filter(|k| k.vni == vni).count()
            + t.shadow_map
                .iter()
                .filter(|(k, v)| k.session == session || v.shadow_vni == vni)
                .count()
            + t.sessions
                .iter()
                .filter(|(s, e)| **s == session || e.shadow_vni == vni)
                .count()
            + t.mirror_filters
                .values()
                .filter(|f| f.action.session == session)
                .count();
        Ok(n as u64)
    }

    /// An alert about a network: recorded, and every armed automation rule of the tenant
    /// watching that network at that severity creates its shadow unless one it created is
    /// still alive.
    pub fn report_alert(
        &mut self,
        caller: &Caller,
        alert: AlertReport,
    ) -> Result<AlertOutcome, ControlError> {
        let tenant = caller.tenant()?.to_string();
        if !(1..=4).contains(&alert.severity) {
            return Err(ControlError::field(
                "severity",
                format!("{} is outside 1 (high) to 4 (low)", alert.severity),
            ));
        }
        let world = World::load(&self.store)?;
        if world.network(&tenant, &alert.network).is_none() {
            return Err(ControlError::NotFound {
                kind: "network",
                name: alert.network.clone(),
            });
        }
        let id = format!("{tenant}/{}", alert.network);
        let detail = to_json(&alert)?;
        let seq = self
            .store
            .transact(|tx| tx.audit(Some(&tenant), &caller.actor, "alert", &id, &detail))?;
        let mut out = AlertOutcome {
            audit_seq: seq,
            shadows_created: Vec::new(),
            already_active: Vec::new(),
        };
        let rules: Vec<Automation> = self
            .store
            .list(kind::AUTOMATION, Some(&tenant))?
            .into_iter()
            .map(|o| from_json(o.body))
            .collect::<Result<_, _>>()?;
        for rule in rules {
            if !rule.enabled || rule.network != alert.network || alert.severity > rule.max_severity
            {
                continue;
            }
            let alive = world.tenants.get(&tenant).is_some_and(|t| {
                t.shadows.values().any(|(_, s, _)| {
                    s.state == ShadowState::Active
                        && matches!(&s.trigger, Trigger::Automation { rule: r, .. } if *r == rule.name)
                })
            });
            if alive {
                out.already_active.push(rule.name.clone());
                continue;
            }
            let mut spec = rule.template.clone();
            spec.name = None;
            let trigger = Trigger::Automation {
                rule: rule.name.clone(),
                alert: format!(
                    "{} (severity {}, audit #{seq})",
                    alert.signature, alert.severity
                ),
            };
            let (s, _) = self.create_shadow_as(
                &tenant,
                &format!("automation:{}", rule.name),
                spec,
                trigger,
                None,
            )?;
            out.shadows_created.push(s.object.name);
        }
        Ok(out)
    }
}
