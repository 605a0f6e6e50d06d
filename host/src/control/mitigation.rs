//! Mitigation (R4): the tenant's policy, and block rules through their life — proposed (by
//! the policy or a person), tried over recorded traffic, committed into the production NIC's
//! ACL through the normal change pipeline, expired by the store-driven timer, withdrawn.
//! Every step, refusals included, is an audit record.
//!
//! A commit reports its [`Activation`]: the ACL slots and entries the rule occupies, the NIC's
//! table generation once they were programmed and read back, and the time. The committed
//! entries are also given a time to live in the firmware's ageing (the rule's TTL plus
//! [`NIC_AGEING_GRACE_S`]), a second line that removes them should the daemon be down when
//! they run out; a later rewrite of the slot by the reconciler cancels it, leaving the
//! daemon's timer alone.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Caller, ControlError, Controller, QuotaExceeded, SyncReport, Versioned, World,
    findings::{Incident, IncidentState, PolicyAction},
    from_json, kind, object_id, to_json, versioned,
};
use crate::{
    driver::Device,
    model::{
        BlockRule, Mitigation, MitigationPolicy, MitigationState, RateLimit,
        mitigation::{MitigationMode, validate_block_rule, validate_policy},
    },
    reconcile::Describe,
    store::Expect,
};
use shadownet_hw::{
    layout::{Prefix, acl::AclRule},
    table::TableId,
};

/// How long after the store-driven expiry the NIC's own ageing deletes a block rule: the
/// daemon's timer is the first line (audited, versioned); the firmware is the second, for
/// when the daemon is down when a rule runs out, so it must never act first.
pub const NIC_AGEING_GRACE_S: u64 = 60;

/// Meta key prefix of each tenant's next mitigation number.
const NEXT_META: &str = "mitigation_next/";

/// A block rule proposed by hand (`POST /v1/mitigations`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// What to block.
    pub rule: BlockRule,
    /// The production network it is for; taken from the shadow or the incident when absent.
    #[serde(default)]
    pub network: Option<String>,
    /// The shadow whose recorded traffic and tables a trial uses.
    #[serde(default)]
    pub shadow: Option<String>,
    /// The incident it answers.
    #[serde(default)]
    pub incident: Option<u64>,
    /// Lifetime once committed; the policy's `rule_ttl_s` when absent.
    #[serde(default)]
    pub ttl_s: Option<u64>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One ACL entry a block rule occupies on the NIC.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AclEntry {
    /// The ACL slot it was written to.
    pub slot: u32,
    /// The rule id the NIC reports with its verdicts (`Compiled::rule_ids` names it).
    pub rule_id: u32,
    /// The entry in words (match, priority, verdict).
    pub summary: String,
    /// The entry as programmed, for reading it back from the NIC's tables.
    #[serde(skip)]
    pub rule: Option<AclRule>,
    /// The device cycle at which the NIC's firmware deletes the entry by itself (the rule's
    /// TTL plus [`NIC_AGEING_GRACE_S`]); absent when the firmware's ageing could not take it
    /// (its table is full, or the device has none), in which case only the daemon's timer
    /// removes it.
    pub nic_deadline: Option<u64>,
}

/// A block rule as it became active on the production NIC: the change was committed, the
/// NIC reconciled and its read-back matched, so from `nic_generation` on (and from
/// `active_at_ms` on the controller's clock) traffic the rule matches is dropped.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Activation {
    /// The mitigation (`m-3`).
    pub mitigation: String,
    /// Its tenant.
    pub tenant: String,
    /// The production network whose VNI it is scoped to.
    pub network: String,
    /// The incident it answers, if any.
    pub incident: Option<u64>,
    /// What it blocks.
    pub rule: BlockRule,
    /// The ACL entries it occupies (a block: one for traffic from the source, and one to it
    /// when the rule names no ports; a rate limit: one policed twin per rule it sits above).
    pub acl: Vec<AclEntry>,
    /// The NIC's table generation after programming (`GET /v1/nic` `generation`).
    pub nic_generation: u32,
    /// When programming and read-back finished, unix milliseconds on the controller's clock.
    pub active_at_ms: i64,
    /// When the expiry timer removes it again.
    pub expires_at_ms: Option<i64>,
    /// What reconciling the NIC did.
    pub sync: SyncReport,
}

impl<D: Device> Controller<D> {
    /// A tenant's policy (the defaults until one is stored).
    pub(super) fn policy_of(&self, tenant: &str) -> Result<MitigationPolicy, ControlError> {
        match self.store.get(kind::MITIGATION_POLICY, tenant)? {
            Some(o) => from_json(o.body),
            None => Ok(MitigationPolicy::default()),
        }
    }

    /// The caller's mitigation policy; version 0 means the defaults (none stored).
    pub fn get_mitigation_policy(
        &self,
        caller: &Caller,
    ) -> Result<Versioned<MitigationPolicy>, ControlError> {
        let tenant = caller.tenant()?;
        match self.store.get(kind::MITIGATION_POLICY, tenant)? {
            Some(o) => versioned(o),
            None => Ok(Versioned {
                version: 0,
                updated_at_ms: 0,
                object: MitigationPolicy::default(),
            }),
        }
    }

    /// Replaces the caller's mitigation policy.
    pub fn put_mitigation_policy(
        &mut self,
        caller: &Caller,
        policy: MitigationPolicy,
    ) -> Result<Versioned<MitigationPolicy>, ControlError> {
        let tenant = caller.tenant()?.to_string();
        self.tenant_obj(&tenant)?;
        validate_policy(&policy).map_err(ControlError::Invalid)?;
        let body = to_json(&policy)?;
        self.check_stored_bytes(&tenant, body.to_string().len() as u64)?;
        let meta = self.store.transact(|tx| {
            let m = tx.put(
                kind::MITIGATION_POLICY,
                &tenant,
                &tenant,
                &body,
                Expect::Any,
                &caller.actor,
                "mitigation policy set",
            )?;
            tx.audit(
                Some(&tenant),
                &caller.actor,
                "mitigation.policy",
                &tenant,
                &body,
            )?;
            Ok(m)
        })?;
        Ok(Versioned::at(&meta, policy))
    }

    /// The caller's mitigations, by id.
    pub fn list_mitigations(
        &self,
        caller: &Caller,
    ) -> Result<Vec<Versioned<Mitigation>>, ControlError> {
        let mut v: Vec<Versioned<Mitigation>> = self.tenant_objects(kind::MITIGATION, caller)?;
        v.sort_by_key(|m| mitigation_number(&m.object.id));
        Ok(v)
    }

    /// One mitigation.
    pub fn get_mitigation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Versioned<Mitigation>, ControlError> {
        self.tenant_object(
            kind::MITIGATION,
            ("mitigation", "mitigation version"),
            caller,
            id,
            None,
        )
    }

    /// Proposes a block rule by hand. Refused (and audited) when its source overlaps the
    /// policy's allow-list.
    pub fn propose_mitigation(
        &mut self,
        caller: &Caller,
        req: ProposeRequest,
    ) -> Result<Versioned<Mitigation>, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let errs = validate_block_rule(&req.rule, "rule/");
        if !errs.is_empty() {
            return Err(ControlError::Invalid(errs));
        }
        let world = World::load(&self.store)?;
        let from_shadow = match &req.shadow {
            Some(s) => Some(
                world
                    .shadow(&tenant, s)
                    .map(|(_, sh, _)| sh.spec.network.clone())
                    .ok_or_else(|| ControlError::NotFound {
                        kind: "shadow",
                        name: s.clone(),
                    })?,
            ),
            None => None,
        };
        let from_incident = match req.incident {
            Some(i) => Some(self.incident_of(&tenant, i)?.network),
            None => None,
        };
        let network = req
            .network
            .clone()
            .or(from_shadow.clone())
            .or(from_incident.clone())
            .ok_or_else(|| {
                ControlError::field("network", "name the network, a shadow or an incident")
            })?;
        for (what, other) in [("shadow", &from_shadow), ("incident", &from_incident)] {
            if let Some(o) = other
                && *o != network
            {
                return Err(ControlError::field(
                    what,
                    format!("it concerns network '{o}', not '{network}'"),
                ));
            }
        }
        let Some((_, net)) = world.network(&tenant, &network) else {
            return Err(ControlError::NotFound {
                kind: "network",
                name: network,
            });
        };
        if let Some(Ok(dst)) = req.rule.dst_prefix()
            && !net.prefixes.iter().any(|p| {
                crate::entries::parse_prefix(p)
                    .is_ok_and(|p| p.addr().is_ipv4() == dst.addr().is_ipv4() && p.overlaps(&dst))
            })
        {
            return Err(ControlError::field(
                "rule/dst",
                format!(
                    "{dst} is outside network '{network}' ({}): the rule would match nothing",
                    net.prefixes.join(", ")
                ),
            ));
        }
        let policy = self.policy_of(&tenant)?;
        if let Some(ttl) = req.ttl_s
            && !(1..=crate::model::mitigation::MAX_MITIGATION_S).contains(&ttl)
        {
            return Err(ControlError::field(
                "ttl_s",
                format!(
                    "{ttl} is outside 1 to {} seconds",
                    crate::model::mitigation::MAX_MITIGATION_S
                ),
            ));
        }
        if let Some(a) = allow_listed(&policy, &req.rule) {
            let detail = format!("source {} overlaps allow-listed prefix {a}", req.rule.src);
            self.audit_refusal(
                &tenant,
                &caller.actor,
                &network,
                &req.rule,
                "allow_list",
                &detail,
            )?;
            return Err(ControlError::Conflict(format!(
                "refused: {detail}; allow-listed addresses are never blocked"
            )));
        }
        self.new_mitigation(
            &tenant,
            &caller.actor,
            Mitigation {
                id: String::new(),
                network,
                shadow: req.shadow,
                incident: req.incident,
                rule: req.rule,
                state: MitigationState::Proposed,
                origin: caller.actor.clone(),
                reason: req.reason.unwrap_or_else(|| "proposed by hand".into()),
                ttl_s: req.ttl_s.unwrap_or(policy.rule_ttl_s),
                created_at_ms: self.now_ms(),
                committed_at_ms: None,
                expires_at_ms: None,
                last_trial: None,
            },
        )
    }

    /// Stores a new proposed mitigation under the tenant's next number.
    fn new_mitigation(
        &mut self,
        tenant: &str,
        actor: &str,
        mut m: Mitigation,
    ) -> Result<Versioned<Mitigation>, ControlError> {
        let size = to_json(&m)?.to_string().len() as u64 + 16;
        self.check_stored_bytes(tenant, size)?;
        let key = format!("{NEXT_META}{tenant}");
        let meta = self.store.transact(|tx| {
            let n: u64 = tx
                .get_meta(&key)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            tx.set_meta(&key, &(n + 1).to_string())?;
            m.id = format!("m-{n}");
            let body = serde_json::to_value(&m)?;
            let id = object_id(tenant, &m.id);
            let meta = tx.put(
                kind::MITIGATION,
                &id,
                tenant,
                &body,
                Expect::Absent,
                actor,
                "mitigation proposed",
            )?;
            tx.audit(
                Some(tenant),
                actor,
                "mitigation.propose",
                &id,
                &serde_json::json!({"network": m.network, "rule": m.rule, "incident": m.incident, "reason": m.reason}),
            )?;
            Ok(meta)
        })?;
        Ok(Versioned::at(&meta, m))
    }

    fn audit_refusal(
        &mut self,
        tenant: &str,
        actor: &str,
        network: &str,
        rule: &BlockRule,
        why: &str,
        detail: &str,
    ) -> Result<(), ControlError> {
        self.store.transact(|tx| {
            tx.audit(
                Some(tenant),
                actor,
                "mitigation.refused",
                &object_id(tenant, network),
                &serde_json::json!({"reason": why, "detail": detail, "rule": rule}),
            )
        })?;
        Ok(())
    }

    /// Commits a proposed mitigation: a new version in state `active`, compiled with the
    /// tenant's networks into an ACL deny at the highest priority and programmed into the
    /// NIC. Refused (and audited) past the policy's `max_rules` (429) or when the source is
    /// allow-listed by now (409).
    pub fn commit_mitigation(
        &mut self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Versioned<Mitigation>, Activation), ControlError> {
        let tenant = caller.tenant()?.to_string();
        self.commit_as(&tenant, &caller.actor, id)
    }

    fn commit_as(
        &mut self,
        tenant: &str,
        actor: &str,
        id: &str,
    ) -> Result<(Versioned<Mitigation>, Activation), ControlError> {
        let mut world = World::load(&self.store)?;
        let (version, mut m) = world.mitigation(tenant, id)?;
        if m.state != MitigationState::Proposed {
            return Err(ControlError::Conflict(format!(
                "mitigation {id} is {:?}; only a proposed one can be committed",
                m.state
            )));
        }
        let policy = self.policy_of(tenant)?;
        if let Some(a) = allow_listed(&policy, &m.rule) {
            let detail = format!("source {} overlaps allow-listed prefix {a}", m.rule.src);
            self.audit_refusal(tenant, actor, &m.network, &m.rule, "allow_list", &detail)?;
            return Err(ControlError::Conflict(format!(
                "refused: {detail}; allow-listed addresses are never blocked"
            )));
        }
        let active = world.tenants.get(tenant).map_or(0, |t| {
            t.mitigations
                .values()
                .filter(|(_, x)| x.state == MitigationState::Active)
                .count()
        }) as u64;
        if let Err(e) =
            QuotaExceeded::check("max_rules", policy.max_rules as u64, active, active + 1)
        {
            let detail = format!(
                "{active} block rules are active; the policy allows {}",
                policy.max_rules
            );
            self.audit_refusal(tenant, actor, &m.network, &m.rule, "max_rules", &detail)?;
            return Err(e);
        }
        let now = self.now_ms();
        m.state = MitigationState::Active;
        m.committed_at_ms = Some(now);
        m.expires_at_ms = Some(
            now.saturating_add(i64::try_from(m.ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX)),
        );
        world.put_mitigation(tenant, m.clone(), version);
        let body = to_json(&m)?;
        let oid = object_id(tenant, id);
        let (meta, report) = self.change(&world, |tx| {
            let meta = tx.put(
                kind::MITIGATION,
                &oid,
                tenant,
                &body,
                Expect::Version(version),
                actor,
                "mitigation committed",
            )?;
            tx.audit(
                Some(tenant),
                actor,
                "mitigation.commit",
                &oid,
                &serde_json::json!({"version": meta.version, "rule": m.rule, "network": m.network, "expires_at_ms": m.expires_at_ms}),
            )?;
            Ok(meta)
        })?;
        if let Some(i) = m.incident
            && let Ok(mut inc) = self.incident_of(tenant, i)
            && inc.state == IncidentState::Open
        {
            inc.state = IncidentState::Mitigated;
            self.save_incident(tenant, &inc)?;
        }
        let mut activation = self.activation(tenant, &m, report);
        self.arm_nic_ageing(&mut activation, m.ttl_s);
        tracing::info!(
            tenant,
            mitigation = %m.id,
            src = %m.rule.src,
            generation = activation.nic_generation,
            entries = activation.acl.len(),
            "block rule active on the NIC"
        );
        Ok((Versioned::at(&meta, m), activation))
    }

    /// Gives a just-committed rule's ACL entries a time to live in the firmware (the second
    /// line behind the store-driven expiry). A refusal is logged, not an error: the commit is
    /// already durable and the daemon's timer still removes the rule.
    fn arm_nic_ageing(&mut self, a: &mut Activation, ttl_s: u64) {
        let hz = u64::from(self.nic.identify().clock_khz).saturating_mul(1000);
        let cycles = ttl_s.saturating_add(NIC_AGEING_GRACE_S).saturating_mul(hz);
        if cycles == 0 {
            return;
        }
        for e in &mut a.acl {
            match self.nic.set_rule_ttl(TableId::Acl, e.slot, cycles) {
                Ok(deadline) => e.nic_deadline = Some(deadline),
                Err(err) => tracing::warn!(
                    mitigation = %a.mitigation,
                    slot = e.slot,
                    %err,
                    "the NIC does not age this block rule; the daemon's timer alone removes it"
                ),
            }
        }
    }

    /// Where a just-committed rule sits on the NIC: its entries in the last compiled state
    /// (which the reconciler has just programmed and verified) and the NIC's generation.
    fn activation(&self, tenant: &str, m: &Mitigation, sync: SyncReport) -> Activation {
        let path = format!("{tenant}/{}/mitigations/{}", m.network, m.id);
        let acl = self
            .compiled
            .as_ref()
            .map(|c| {
                let ids: Vec<u32> = c
                    .rule_ids
                    .iter()
                    .filter(|(_, p)| **p == path)
                    .map(|(id, _)| *id)
                    .collect();
                c.plan
                    .acl
                    .iter()
                    .filter(|(_, r)| ids.contains(&r.action.rule_id))
                    .map(|(slot, r)| AclEntry {
                        slot: *slot,
                        rule_id: r.action.rule_id,
                        summary: r.describe(),
                        rule: Some(*r),
                        nic_deadline: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Activation {
            mitigation: m.id.clone(),
            tenant: tenant.to_string(),
            network: m.network.clone(),
            incident: m.incident,
            rule: m.rule.clone(),
            acl,
            nic_generation: self.nic.generation(),
            active_at_ms: self.now_ms(),
            expires_at_ms: m.expires_at_ms,
            sync,
        }
    }

    /// Withdraws a mitigation: a proposed one is dropped, an active one removed from the NIC.
    pub fn withdraw_mitigation(
        &mut self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Versioned<Mitigation>, SyncReport), ControlError> {
        let tenant = caller.tenant()?.to_string();
        self.end_mitigation(&tenant, &caller.actor, id, MitigationState::Withdrawn)
    }

    fn end_mitigation(
        &mut self,
        tenant: &str,
        actor: &str,
        id: &str,
        to: MitigationState,
    ) -> Result<(Versioned<Mitigation>, SyncReport), ControlError> {
        let mut world = World::load(&self.store)?;
        let (version, mut m) = world.mitigation(tenant, id)?;
        if !matches!(m.state, MitigationState::Proposed | MitigationState::Active) {
            return Err(ControlError::Conflict(format!(
                "mitigation {id} is already {:?}",
                m.state
            )));
        }
        let was = m.state;
        m.state = to;
        world.put_mitigation(tenant, m.clone(), version);
        let body = to_json(&m)?;
        let oid = object_id(tenant, id);
        let (action, message) = match to {
            MitigationState::Expired => ("mitigation.expire", "mitigation expired"),
            _ => ("mitigation.withdraw", "mitigation withdrawn"),
        };
        let write = |tx: &mut crate::store::Txn<'_>| {
            let meta = tx.put(
                kind::MITIGATION,
                &oid,
                tenant,
                &body,
                Expect::Version(version),
                actor,
                message,
            )?;
            tx.audit(
                Some(tenant),
                actor,
                action,
                &oid,
                &serde_json::json!({"version": meta.version, "was": was, "rule": m.rule}),
            )?;
            Ok(meta)
        };
        let (meta, report) = if was == MitigationState::Active {
            self.change(&world, write)?
        } else {
            (
                self.store.transact(|tx| {
                    write(tx).map_err(|e| match e {
                        ControlError::Store(s) => s,
                        other => crate::store::StoreError::Invalid(other.to_string()),
                    })
                })?,
                SyncReport::default(),
            )
        };
        Ok((Versioned::at(&meta, m), report))
    }

    /// Removes every active block rule whose lifetime ran out (the daemon's expiry timer;
    /// expiry times are in the store, so they survive restarts). Returns the ids expired.
    pub fn expire_mitigations(&mut self) -> Result<Vec<String>, ControlError> {
        let now = self.now_ms();
        let world = World::load(&self.store)?;
        let mut due = Vec::new();
        for (tn, t) in &world.tenants {
            for (_, m) in t.mitigations.values() {
                if m.state == MitigationState::Active && m.expires_at_ms.is_some_and(|e| e <= now) {
                    due.push((tn.clone(), m.id.clone()));
                }
            }
        }
        let mut out = Vec::new();
        for (tenant, id) in due {
            self.end_mitigation(&tenant, "timer", &id, MitigationState::Expired)?;
            out.push(format!("{tenant}/{id}"));
        }
        Ok(out)
    }

    /// The policy's answer to incidents a batch of findings touched: each outside source of a
    /// qualifying incident, whose own findings in it pass the thresholds too, gets a block
    /// rule proposed (and, in `auto` mode, committed) unless
    /// one for it in that network is proposed or active already; allow-listed sources and
    /// commits past `max_rules` are refused and audited.
    pub(super) fn apply_policy(
        &mut self,
        tenant: &str,
        policy: &MitigationPolicy,
        incidents: &[u64],
    ) -> Result<Vec<PolicyAction>, ControlError> {
        let mut out = Vec::new();
        if policy.mode == MitigationMode::Off {
            return Ok(out);
        }
        for &id in incidents {
            let mut inc = self.incident_of(tenant, id)?;
            if !qualifies(&inc, policy) {
                continue;
            }
            let mut changed = false;
            // Each source must pass the thresholds on its own findings: one source's alerts
            // must not get another (a false positive that joined the same incident) blocked,
            // and a SYN-flood alert's incidental source is not blocked at all.
            let stats = self.source_stats(tenant, id)?;
            let blockable: Vec<String> = inc
                .sources
                .iter()
                .filter(|s| stats.get(*s).is_some_and(|x| x.qualifies(policy)))
                .cloned()
                .collect();
            if blockable.is_empty() {
                // A flood from many (or spoofed) sources none of which qualifies on its own
                // is answered by a rate limit toward its target.
                if let Some(rule) = self.flood_rate_limit(tenant, policy, &inc)? {
                    let src = format!("{} sources", inc.sources.len());
                    changed |= self.answer(tenant, policy, &mut inc, &src, rule, &mut out)?;
                }
            }
            for src in blockable {
                let Ok(ip) = src.parse::<std::net::IpAddr>() else {
                    continue;
                };
                let rule = BlockRule::block(Prefix::host(ip).to_string());
                changed |= self.answer(tenant, policy, &mut inc, &src, rule, &mut out)?;
            }
            if changed {
                // Reload: a commit may have marked it mitigated meanwhile.
                let mut now = self.incident_of(tenant, id)?;
                now.mitigations = inc.mitigations.clone();
                now.refused = inc.refused.clone();
                self.save_incident(tenant, &now)?;
            }
        }
        Ok(out)
    }
}

impl<D: Device> Controller<D> {
    /// Proposes `rule` for incident `inc` (and commits it in `auto` mode), unless the same
    /// rule (for a rate limit: the same traffic, whatever the rate) is proposed or active
    /// already in that network, or the allow-list refuses it. `source` names what the rule
    /// answers in the policy's report. Whether the incident changed.
    fn answer(
        &mut self,
        tenant: &str,
        policy: &MitigationPolicy,
        inc: &mut Incident,
        source: &str,
        rule: BlockRule,
        out: &mut Vec<PolicyAction>,
    ) -> Result<bool, ControlError> {
        let id = inc.id;
        let mut changed = false;
        let same = |a: &BlockRule, b: &BlockRule| {
            if a.is_rate_limit() && b.is_rate_limit() {
                BlockRule {
                    rate_limit: None,
                    ..a.clone()
                } == BlockRule {
                    rate_limit: None,
                    ..b.clone()
                }
            } else {
                a == b
            }
        };
        let world = World::load(&self.store)?;
        let existing = world.tenants.get(tenant).and_then(|t| {
            t.mitigations.values().find(|(_, m)| {
                m.network == inc.network
                    && same(&m.rule, &rule)
                    && matches!(m.state, MitigationState::Proposed | MitigationState::Active)
            })
        });
        let action = |a: &str, m: Option<String>, d: String| PolicyAction {
            incident: id,
            source: source.to_string(),
            action: a.into(),
            mitigation: m,
            detail: d,
            activation: None,
        };
        if let Some(a) = allow_listed(policy, &rule) {
            if !inc
                .refused
                .iter()
                .any(|r| r.starts_with(&format!("{source}:")))
            {
                let detail = format!("source {source} overlaps allow-listed prefix {a}");
                self.audit_refusal(tenant, "policy", &inc.network, &rule, "allow_list", &detail)?;
                inc.refused.push(format!("{source}: allow-listed ({a})"));
                changed = true;
                out.push(action("refused", None, detail));
            }
            return Ok(changed);
        }
        let m = match existing {
            Some((_, m)) if m.state == MitigationState::Active => return Ok(changed),
            Some(_) if policy.mode != MitigationMode::Auto => return Ok(changed),
            Some((_, m)) => m.id.clone(),
            None => {
                let what = match &rule.rate_limit {
                    Some(l) => format!(
                        "; a flood from {} sources at {}: rate limit {} packets/s",
                        inc.sources.len(),
                        rule.dst.as_deref().unwrap_or("?"),
                        l.pps
                    ),
                    None => String::new(),
                };
                let m = self.new_mitigation(
                    tenant,
                    "policy",
                    Mitigation {
                        id: String::new(),
                        network: inc.network.clone(),
                        shadow: inc.shadows.first().cloned(),
                        incident: Some(id),
                        rule: rule.clone(),
                        state: MitigationState::Proposed,
                        origin: "policy".into(),
                        reason: format!(
                            "incident {id}: {} findings, severity {}{}{what}",
                            inc.findings,
                            inc.max_severity,
                            inc.max_score
                                .map(|s| format!(", score {s:.2}"))
                                .unwrap_or_default()
                        ),
                        ttl_s: policy.rule_ttl_s,
                        created_at_ms: self.now_ms(),
                        committed_at_ms: None,
                        expires_at_ms: None,
                        last_trial: None,
                    },
                )?;
                inc.mitigations.push(m.object.id.clone());
                changed = true;
                out.push(action("proposed", Some(m.object.id.clone()), String::new()));
                m.object.id
            }
        };
        if policy.mode == MitigationMode::Auto {
            match self.commit_as(tenant, "policy", &m) {
                Ok((_, a)) => {
                    let mut act = action("committed", Some(m), String::new());
                    act.activation = Some(a);
                    out.push(act);
                }
                Err(e @ (ControlError::Quota(_) | ControlError::Conflict(_))) => {
                    out.push(action("refused", Some(m), e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// A rate limit answering incident `inc` (none of whose sources qualifies for a block on
    /// its own) when it is a flood from many sources at one target: at least
    /// `flood_min_sources` distinct sources, or a SYN-flood finding whose source is
    /// incidental (`incidental_source`: the detector raises one alert per target and
    /// interval, so a spoofed flood names few sources). The limit names the target,
    /// the protocol and destination port most of the incident's findings toward it carry, and
    /// for a SYN flood (the detector's class) only connection attempts. Its rate is the
    /// target's baseline rate of connection attempts (the detector's explanation) times
    /// `flood_headroom`, at least `flood_min_pps`; the burst a tenth of a second of it.
    fn flood_rate_limit(
        &self,
        tenant: &str,
        policy: &MitigationPolicy,
        inc: &Incident,
    ) -> Result<Option<BlockRule>, ControlError> {
        let [target] = inc.targets.as_slice() else {
            return Ok(None);
        };
        if policy.flood_min_sources == 0 {
            return Ok(None);
        }
        let Ok(target_ip) = target.parse::<std::net::IpAddr>() else {
            return Ok(None);
        };
        let mut distributed = inc.sources.len() >= policy.flood_min_sources as usize;
        let mut traffic: std::collections::BTreeMap<(String, Option<u16>), u64> =
            Default::default();
        let (mut syn_flood, mut baseline) = (false, None::<f64>);
        for r in self.store.findings(tenant, None, None, usize::MAX)? {
            if r.incident != Some(inc.id) {
                continue;
            }
            let f = super::Finding::from_record(r)?;
            if f.dest_ip != *target {
                continue;
            }
            let proto = f.proto.as_deref().unwrap_or("").to_ascii_lowercase();
            *traffic.entry((proto, f.dest_port)).or_default() += 1;
            if is_syn_flood(&f) {
                syn_flood = true;
                if let Some(b) = explained(&f, "syn_rate_to_dst_per_s", "baseline") {
                    baseline = Some(baseline.map_or(b, |x: f64| x.max(b)));
                }
                // The flood comes from many (or spoofed) sources, however few the findings
                // name.
                distributed |= incidental_source(&f);
            }
        }
        if !distributed {
            return Ok(None);
        }
        let Some(((proto, port), _)) = traffic.into_iter().max_by_key(|(_, c)| *c) else {
            return Ok(None);
        };
        // A limit on every protocol toward the target would police its whole service: the
        // findings must say which traffic floods it.
        let Some(protocol) = crate::entries::parse_protocol(&proto).ok().flatten() else {
            return Ok(None);
        };
        let with_ports = matches!(protocol, 6 | 17);
        let pps = baseline
            .map_or(0.0, |b| b * policy.flood_headroom)
            .max(f64::from(policy.flood_min_pps))
            .min(f64::from(u32::MAX)) as u32;
        Ok(Some(BlockRule {
            src: if target_ip.is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            }
            .into(),
            protocol: Some(proto),
            dst_ports: port.filter(|_| with_ports).map(|p| p.to_string()),
            dst: Some(target.clone()),
            connections_only: syn_flood && protocol == 6,
            rate_limit: Some(RateLimit {
                pps,
                burst: Some((pps / 10).max(1)),
            }),
        }))
    }
}

/// One outside source's findings within an incident.
#[derive(Debug, Default)]
struct SourceStats {
    findings: u64,
    max_severity: u8,
    max_score: Option<f64>,
}

impl SourceStats {
    /// Whether the source's own findings pass the policy's thresholds.
    fn qualifies(&self, p: &MitigationPolicy) -> bool {
        self.max_severity <= p.min_severity
            && self.findings >= u64::from(p.min_findings)
            && (p.min_score <= 0.0 || self.max_score.is_none_or(|s| s >= p.min_score))
    }
}

impl<D: Device> Controller<D> {
    /// Per outside source, what the findings of incident `id` say about it (findings whose
    /// source is incidental left out).
    fn source_stats(
        &self,
        tenant: &str,
        id: u64,
    ) -> Result<std::collections::HashMap<String, SourceStats>, ControlError> {
        let mut out: std::collections::HashMap<String, SourceStats> = Default::default();
        for r in self.store.findings(tenant, None, None, usize::MAX)? {
            if r.incident != Some(id) {
                continue;
            }
            let f = super::Finding::from_record(r)?;
            if incidental_source(&f) {
                continue;
            }
            let s = out
                .entry(f.correlation.outside.clone())
                .or_insert(SourceStats {
                    max_severity: u8::MAX,
                    ..SourceStats::default()
                });
            s.findings += 1;
            s.max_severity = s.max_severity.min(f.severity);
            if let Some(score) = f.score {
                s.max_score = Some(s.max_score.map_or(score, |m| m.max(score)));
            }
        }
        Ok(out)
    }
}

/// Whether a finding is the built-in detector's SYN-flood alert.
fn is_syn_flood(f: &super::Finding) -> bool {
    f.event["alert"]["metadata"]["shadownet"]["class"] == "syn_flood"
}

/// A feature of the detector's explanation of a finding: its `baseline` or `observed` value.
fn explained(f: &super::Finding, feature: &str, what: &str) -> Option<f64> {
    f.event["alert"]["metadata"]["shadownet"]["explanation"]
        .as_array()?
        .iter()
        .find(|d| d["feature"] == feature)?[what]
        .as_f64()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// Whether a finding names its source only by accident: a SYN-flood alert is about the
/// flooded destination, raised on whichever packet tipped the rate over, and when that
/// packet's source sends under a tenth of the flood it is not the flood's source (a client,
/// or one of many spoofed addresses). Such a finding counts toward no source's block.
fn incidental_source(f: &super::Finding) -> bool {
    is_syn_flood(f)
        && matches!(
            (
                explained(f, "syn_rate_to_dst_per_s", "observed"),
                explained(f, "syn_rate_from_src_per_s", "observed"),
            ),
            (Some(to_dst), Some(from_src)) if from_src * 10.0 < to_dst
        )
}

/// Whether an incident passes the policy's thresholds.
fn qualifies(inc: &Incident, p: &MitigationPolicy) -> bool {
    inc.state != IncidentState::Closed
        && inc.max_severity <= p.min_severity
        && inc.findings >= u64::from(p.min_findings)
        && (p.min_score <= 0.0 || inc.max_score.is_none_or(|s| s >= p.min_score))
}

/// The allow-listed prefix a block rule's source overlaps, if any. A rate limit is not
/// refused: it blocks no source, it polices what reaches one destination (allow-listed
/// sources included).
fn allow_listed(p: &MitigationPolicy, rule: &BlockRule) -> Option<String> {
    if rule.is_rate_limit() {
        return None;
    }
    let src = rule.src_prefix().ok()?;
    p.allow_list.iter().find_map(|a| {
        let a = crate::entries::parse_prefix(a).ok()?;
        (a.addr().is_ipv4() == src.addr().is_ipv4() && a.overlaps(&src)).then(|| a.to_string())
    })
}

/// `m-12` → 12, for ordering.
fn mitigation_number(id: &str) -> u64 {
    id.strip_prefix("m-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}
