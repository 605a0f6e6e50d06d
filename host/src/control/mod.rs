//! The control plane's operations: every API call ends here.
//!
//! A change goes through the same steps whatever it is:
//!
//! 1. load the desired state of every tenant from the store and apply the change in memory;
//! 2. validate it and compile the whole desired state for the NIC — a change the NIC cannot
//!    hold (tables full, VNI clash, out of VFs) or a tenant's limits forbid is refused here,
//!    before anything is written;
//! 3. commit it to the store as a new version, in one transaction with the rule-slot
//!    allocation, the idempotency record and the audit entry — from here on it is
//!    acknowledged and survives `kill -9`;
//! 4. reconcile the NIC to the compiled state: only the entries that differ are written, each
//!    by one command, in an order that never opens an isolation hole.
//!
//! If the daemon dies between 3 and 4, the next start reconciles from the store.

mod error;
mod findings;
mod honeypots;
mod mitigation;
mod nic;
mod shadow_loop;
mod shadows;
mod telemetry;
mod trial;
mod world;

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

pub use error::{ControlError, QuotaExceeded};
pub use findings::{
    Correlation, Finding, FindingQuery, Incident, IncidentState, IngestReport, PolicyAction,
    PortCounters, ProductionVm, ShadowRef, SignatureCount, parse_events, parse_timestamp,
};
pub use mitigation::{AclEntry, Activation, NIC_AGEING_GRACE_S, ProposeRequest};
pub use nic::{Backend, InjectReport, NicStatus, PortOutput, TableFill};
pub use shadow_loop::{
    ClassOutcome, GeneratedLoop, LoopFrame, LoopIngest, LoopReport, LoopRequest, MAX_LOOP_FRAMES,
    SURICATA_MAX_SEVERITY, SuricataLoop, UNLABELLED, blocked_sources,
};
pub use shadows::{AlertOutcome, Teardown};
pub use telemetry::{HeavyHitter, flow_hash};
pub use trial::{CaptureSource, StoredCapture, StoredLabels, TrialRequest};
pub use world::World;

use crate::{
    driver::{Device, Nic, PortConfig},
    model::{
        Automation, Network, Tenant,
        compile::{Compiled, SlotAllocator},
        diff::{Change, diff_networks, diff_shadows},
        validate::{validate_automation, validate_name, validate_network, validate_tenant},
    },
    reconcile::{ReconcileReport, Reconciler, TableDiff},
    store::{Expect, Object, Store, Txn, VersionMeta},
};

/// Store kinds.
pub mod kind {
    /// Tenants (id = name).
    pub const TENANT: &str = "tenant";
    /// Bearer tokens (id = SHA-256 of the token, hex).
    pub const TOKEN: &str = "token";
    /// Production networks (id = `tenant/name`).
    pub const NETWORK: &str = "network";
    /// Shadows (id = `tenant/name`).
    pub const SHADOW: &str = "shadow";
    /// Automation rules (id = `tenant/name`).
    pub const AUTOMATION: &str = "automation";
    /// Mitigations: block rules and their life (id = `tenant/m-N`).
    pub const MITIGATION: &str = "mitigation";
    /// Mitigation policies (id = tenant).
    pub const MITIGATION_POLICY: &str = "mitigation-policy";
}

/// Meta key holding the rule-slot allocation.
const SLOTS_META: &str = "rule_slots";

/// VNIs from here up are allocated to shadows; production networks use the ones below.
pub const SHADOW_VNI_BASE: u32 = 0x00F0_0000;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose objects the call concerns; `None` for admin calls without one.
    pub tenant: Option<String>,
    /// Whether the caller holds the admin token.
    pub admin: bool,
    /// Name for versions and the audit log (`admin`, `tenant:acme`).
    pub actor: String,
}

impl Caller {
    /// The tenant the call is scoped to.
    pub fn tenant(&self) -> Result<&str, ControlError> {
        self.tenant.as_deref().ok_or_else(|| {
            ControlError::Forbidden(
                "this call concerns a tenant's objects: use a tenant token, or the admin token with the Shadownet-Tenant header".into(),
            )
        })
    }

    fn require_admin(&self) -> Result<(), ControlError> {
        if self.admin {
            Ok(())
        } else {
            Err(ControlError::Forbidden(
                "this call needs the admin token".into(),
            ))
        }
    }
}

/// An idempotency key and the fingerprint of the request that carried it.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// The key the client sent.
    pub key: String,
    /// Hash of method, path and body.
    pub fingerprint: String,
}

/// An object with its version.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Versioned<T> {
    /// Version number (1 = created).
    pub version: u64,
    /// When this version was written, unix milliseconds.
    pub updated_at_ms: i64,
    /// The object.
    pub object: T,
}

impl<T> Versioned<T> {
    /// The object as written by the version `meta` describes.
    pub fn at(meta: &VersionMeta, object: T) -> Versioned<T> {
        Versioned {
            version: meta.version,
            updated_at_ms: meta.created_at_ms,
            object,
        }
    }
}

/// A version in an object's history.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// Version number.
    pub version: u64,
    /// Global change sequence number.
    pub seq: u64,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub author: String,
    /// Why.
    pub message: String,
    /// Whether this version deleted the object.
    pub deleted: bool,
}

impl From<VersionMeta> for HistoryEntry {
    fn from(m: VersionMeta) -> Self {
        HistoryEntry {
            version: m.version,
            seq: m.seq,
            at_ms: m.created_at_ms,
            author: m.author,
            message: m.message,
            deleted: m.deleted,
        }
    }
}

/// A tenant as the API shows it, with what it uses of its limits.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant.
    pub tenant: Tenant,
    /// Current usage against each limit.
    pub usage: Usage,
}

/// What a tenant uses.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Usage {
    /// Shadows alive.
    pub shadows: u32,
    /// Mirrored bandwidth of its shadows, Mbit/s.
    pub mirror_mbps: u64,
    /// Mirror rules of its shadows.
    pub mirror_rules: u32,
    /// NIC table entries.
    pub table_entries: u32,
    /// Bytes in the store.
    pub stored_bytes: u64,
}

/// What reconciling the NIC did.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct SyncReport {
    /// Entries written.
    pub written: u64,
    /// Entries removed.
    pub removed: u64,
    /// Whether the read-back after programming matched the desired state.
    pub verified: bool,
}

impl From<&ReconcileReport> for SyncReport {
    fn from(r: &ReconcileReport) -> Self {
        let (mut written, mut removed) = (0, 0);
        for (_, c) in &r.applied.counts {
            written += (c.added + c.changed) as u64;
            removed += c.removed as u64;
        }
        // `reconcile` fails unless its read-back matched the desired state.
        SyncReport {
            written,
            removed,
            verified: true,
        }
    }
}

/// The control plane over one NIC.
pub struct Controller<D: Device> {
    store: Store,
    nic: Nic<D>,
    port: PortConfig,
    reconciler: Reconciler,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The last state compiled and programmed.
    compiled: Option<Compiled>,
    /// Where captures of simulator runs go.
    sim_out: Option<std::path::PathBuf>,
    /// Simulator runs so far.
    injections: u64,
    /// What the telemetry ring delivered: heavy hitters for correlation, records to hand on.
    telemetry: telemetry::TelemetryCache,
    /// The supervised Suricata the loop hands shadow captures to, when the daemon runs one.
    suricata: Option<crate::analysis::suricata::SuricataNode>,
    /// Loop runs analysed by Suricata so far (names their directories).
    suricata_runs: u64,
    /// Requests for the controller's thread, when it has one ([`Controller::serve`]).
    inbox: Option<Inbox<D>>,
}

/// A change: runs with the controller to itself.
pub type ChangeJob<D> = Box<dyn FnOnce(&mut Controller<D>) + Send>;

/// A read: runs with shared access, also between the steps of a long operation.
pub type ReadJob<D> = Box<dyn FnOnce(&Controller<D>) + Send>;

/// Work for the controller's thread.
pub enum Job<D: Device> {
    /// Changes state (or needs the NIC to itself): runs in arrival order, never inside
    /// another job.
    Change(ChangeJob<D>),
    /// Reads the store only: may run while a long operation (a loop run) is between steps.
    Read(ReadJob<D>),
}

/// The requests waiting for the controller's thread, and the changes that arrived while a
/// long operation was serving reads (they run after it, in order).
struct Inbox<D: Device> {
    rx: std::sync::mpsc::Receiver<Job<D>>,
    deferred: std::cell::RefCell<std::collections::VecDeque<ChangeJob<D>>>,
}

/// The wall clock in unix milliseconds.
pub fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl<D: Device> Controller<D> {
    /// Takes over a NIC: configures its substrate port and reconciles it from the store.
    /// Drift found on the way (entries the store does not explain, or missing ones) is
    /// returned so the daemon can report it.
    pub fn start(
        store: Store,
        mut nic: Nic<D>,
        port: PortConfig,
        clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Result<(Controller<D>, TableDiff), ControlError> {
        nic.configure_port(&port)?;
        let mut c = Controller {
            store,
            nic,
            port,
            reconciler: Reconciler::new(),
            clock,
            compiled: None,
            sim_out: None,
            injections: 0,
            telemetry: telemetry::TelemetryCache::default(),
            suricata: None,
            suricata_runs: 0,
            inbox: None,
        };
        let world = World::load(&c.store)?;
        let mut slots = c.slots()?;
        let compiled = world.compile(&c.port, &mut slots)?;
        let drift = c.reconciler.drift(&mut c.nic, &compiled.plan)?;
        c.reconciler.reconcile(&mut c.nic, &compiled.plan)?;
        c.nic.set_enabled(true, false)?;
        c.compiled = Some(compiled);
        Ok((c, drift))
    }

    /// Runs requests from `rx` until every sender is gone: changes one at a time in arrival
    /// order, reads too — and reads also while a long operation is between its steps (see
    /// `serve_reads`), so that a loop run of a minute does not hold up every
    /// `GET` for that minute. Changes that arrive meanwhile run after it, in order.
    pub fn serve(mut self, rx: std::sync::mpsc::Receiver<Job<D>>) {
        self.inbox = Some(Inbox {
            rx,
            deferred: Default::default(),
        });
        loop {
            let Some(inbox) = &self.inbox else { return };
            let deferred = inbox.deferred.borrow_mut().pop_front();
            let job = match deferred {
                Some(f) => Job::Change(f),
                None => match inbox.rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            match job {
                Job::Change(f) => f(&mut self),
                Job::Read(f) => f(&self),
            }
        }
    }

    /// Serves the reads waiting now and sets aside the changes (they run after the current
    /// job). Long operations call this between their steps; the store they have written by
    /// then is what the reads see.
    pub(crate) fn serve_reads(&self) {
        let Some(inbox) = &self.inbox else { return };
        while let Ok(job) = inbox.rx.try_recv() {
            match job {
                Job::Read(f) => f(self),
                Job::Change(f) => inbox.deferred.borrow_mut().push_back(f),
            }
        }
    }

    /// Hands the controller a supervised Suricata: from now on the generated loop
    /// ([`Controller::run_generated_loop`]) has it analyse the shadow's traffic and ingests
    /// its alerts. A node that failed to start is kept so its status can say why.
    pub fn set_suricata(&mut self, node: crate::analysis::suricata::SuricataNode) {
        self.suricata = Some(node);
    }

    /// Takes the supervised Suricata away (to stop it on shutdown: a child process outlives
    /// a daemon that exits without stopping it).
    pub fn take_suricata(&mut self) -> Option<crate::analysis::suricata::SuricataNode> {
        self.suricata.take()
    }

    /// The supervised Suricata, when there is one.
    pub fn suricata(&self) -> Option<&crate::analysis::suricata::SuricataNode> {
        self.suricata.as_ref()
    }

    /// The supervised Suricata's state and counters (`GET /v1/analysis/suricata`).
    pub fn suricata_status(&self) -> crate::analysis::suricata::SuricataStatus {
        self.suricata.as_ref().map_or_else(
            crate::analysis::suricata::SuricataStatus::disabled,
            crate::analysis::suricata::SuricataNode::status,
        )
    }

    /// Sets where the captures of `inject` runs go.
    pub fn set_sim_out(&mut self, dir: std::path::PathBuf) {
        self.sim_out = Some(dir);
    }

    /// The NIC.
    pub fn nic(&mut self) -> &mut Nic<D> {
        &mut self.nic
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The substrate port configuration.
    pub fn port(&self) -> &PortConfig {
        &self.port
    }

    /// The last compiled state.
    pub fn compiled(&self) -> Option<&Compiled> {
        self.compiled.as_ref()
    }

    /// Now, unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    fn slots(&self) -> Result<SlotAllocator, ControlError> {
        match self.store.get_meta(SLOTS_META)? {
            None => Ok(SlotAllocator::default()),
            Some(s) => serde_json::from_str(&s).map_err(|e| {
                ControlError::Conflict(format!("stored rule-slot allocation is unreadable: {e}"))
            }),
        }
    }

    /// Validates and compiles a candidate world, checks every tenant's table-entry limit,
    /// commits `write` in one transaction with the new slot allocation, then programs the NIC.
    fn change<T>(
        &mut self,
        candidate: &World,
        write: impl FnOnce(&mut Txn<'_>) -> Result<T, ControlError>,
    ) -> Result<(T, SyncReport), ControlError> {
        let mut slots = self.slots()?;
        let compiled = candidate.compile(&self.port, &mut slots)?;
        for (tenant, entries) in &compiled.entries_by_tenant {
            if let Some(t) = candidate.tenants.get(tenant) {
                let allowed = t.tenant.limits.max_table_entries as u64;
                let now = self
                    .compiled
                    .as_ref()
                    .and_then(|c| c.entries_by_tenant.get(tenant))
                    .copied()
                    .unwrap_or(0) as u64;
                // Only a change that grows a tenant past its limit is refused; one that
                // shrinks an over-limit tenant (after a limit was lowered) goes through.
                if *entries as u64 > now {
                    QuotaExceeded::check("max_table_entries", allowed, now, *entries as u64)?;
                }
            }
        }
        let slots_json = serde_json::to_string(&slots)
            .map_err(|e| ControlError::Conflict(format!("rule slots: {e}")))?;
        let mut failure: Option<ControlError> = None;
        let out = self.store.transact(|tx| {
            match write(tx) {
                Ok(v) => {
                    tx.set_meta(SLOTS_META, &slots_json)?;
                    Ok(v)
                }
                Err(ControlError::Store(e)) => Err(e),
                Err(e) => {
                    failure = Some(e);
                    // Abort the transaction: nothing of a refused change is written.
                    Err(crate::store::StoreError::Aborted)
                }
            }
        });
        let value = out.map_err(|e| failure.unwrap_or(ControlError::Store(e)))?;
        let report = self.reconciler.reconcile(&mut self.nic, &compiled.plan)?;
        self.compiled = Some(compiled);
        Ok((value, SyncReport::from(&report)))
    }

    /// Reprograms the NIC from the store: after a NIC reset or to repair drift.
    pub fn resync(&mut self) -> Result<(TableDiff, SyncReport), ControlError> {
        let world = World::load(&self.store)?;
        let mut slots = self.slots()?;
        let compiled = world.compile(&self.port, &mut slots)?;
        if self.nic.identify().build_id == 0 {
            return Err(ControlError::Conflict("the NIC does not identify".into()));
        }
        let drift = self.reconciler.drift(&mut self.nic, &compiled.plan)?;
        self.nic.configure_port(&self.port)?;
        let report = self.reconciler.reconcile(&mut self.nic, &compiled.plan)?;
        self.nic.set_enabled(true, false)?;
        self.compiled = Some(compiled);
        Ok((drift, SyncReport::from(&report)))
    }

    /// Rebuilds the NIC if it was reset since it was last programmed (a firmware crash, a
    /// PCIe reset): called by the daemon's timer, so a reset is repaired even when no change
    /// arrives. Returns whether it rebuilt.
    pub fn watch_nic(&mut self) -> Result<bool, ControlError> {
        if !self.reconciler.reset_since_last(&self.nic) {
            return Ok(false);
        }
        tracing::warn!("the NIC was reset: rebuilding it from the store");
        self.resync()?;
        Ok(true)
    }

    /// Entries on the NIC that differ from the store's desired state, without changing them.
    pub fn drift(&mut self) -> Result<TableDiff, ControlError> {
        let world = World::load(&self.store)?;
        let mut slots = self.slots()?;
        let compiled = world.compile(&self.port, &mut slots)?;
        Ok(self.reconciler.drift(&mut self.nic, &compiled.plan)?)
    }

    /// Resets the NIC (as a firmware crash or a PCIe reset would) and rebuilds it.
    pub fn reset_nic(&mut self) -> Result<SyncReport, ControlError> {
        self.nic.reset()?;
        Ok(self.resync()?.1)
    }

    // ---- tenants ----------------------------------------------------------------------

    /// Creates a tenant and its first token (returned once; only its hash is stored).
    pub fn create_tenant(
        &mut self,
        caller: &Caller,
        tenant: Tenant,
    ) -> Result<(Versioned<Tenant>, String), ControlError> {
        caller.require_admin()?;
        validate_tenant(&tenant).map_err(ControlError::Invalid)?;
        if self.store.get(kind::TENANT, &tenant.name)?.is_some() {
            return Err(ControlError::Exists {
                kind: "tenant",
                name: tenant.name,
            });
        }
        let token = new_token();
        let body = to_json(&tenant)?;
        let meta = self.store.transact(|tx| {
            let m = tx.put(
                kind::TENANT,
                &tenant.name,
                &tenant.name,
                &body,
                Expect::Absent,
                &caller.actor,
                "tenant created",
            )?;
            tx.put(
                kind::TOKEN,
                &token_hash(&token),
                &tenant.name,
                &serde_json::json!({ "tenant": tenant.name }),
                Expect::Absent,
                &caller.actor,
                "token issued",
            )?;
            tx.audit(
                Some(&tenant.name),
                &caller.actor,
                "tenant.create",
                &tenant.name,
                &body,
            )?;
            Ok(m)
        })?;
        Ok((Versioned::at(&meta, tenant), token))
    }

    /// Issues another token for a tenant.
    pub fn issue_token(&mut self, caller: &Caller, tenant: &str) -> Result<String, ControlError> {
        caller.require_admin()?;
        self.tenant_obj(tenant)?;
        let token = new_token();
        self.store.transact(|tx| {
            tx.put(
                kind::TOKEN,
                &token_hash(&token),
                tenant,
                &serde_json::json!({ "tenant": tenant }),
                Expect::Absent,
                &caller.actor,
                "token issued",
            )?;
            tx.audit(
                Some(tenant),
                &caller.actor,
                "token.issue",
                tenant,
                &serde_json::Value::Null,
            )?;
            Ok(())
        })?;
        Ok(token)
    }

    /// The tenant a token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Option<String>, ControlError> {
        Ok(self
            .store
            .get(kind::TOKEN, &token_hash(token))?
            .map(|o| o.tenant))
    }

    fn tenant_obj(&self, name: &str) -> Result<Versioned<Tenant>, ControlError> {
        let o = self
            .store
            .get(kind::TENANT, name)?
            .ok_or_else(|| ControlError::NotFound {
                kind: "tenant",
                name: name.to_string(),
            })?;
        versioned(o)
    }

    /// Tenants: all of them for the admin, one's own otherwise.
    pub fn list_tenants(&self, caller: &Caller) -> Result<Vec<TenantView>, ControlError> {
        let objs = self.store.list(kind::TENANT, None)?;
        let mut out = Vec::new();
        for o in objs {
            if !caller.admin && caller.tenant.as_deref() != Some(o.id.as_str()) {
                continue;
            }
            let t: Versioned<Tenant> = versioned(o)?;
            let usage = self.usage(&t.object.name)?;
            out.push(TenantView {
                tenant: t.object,
                usage,
            });
        }
        Ok(out)
    }

    /// One tenant with its usage.
    pub fn get_tenant(&self, caller: &Caller, name: &str) -> Result<TenantView, ControlError> {
        if !caller.admin && caller.tenant.as_deref() != Some(name) {
            return Err(ControlError::NotFound {
                kind: "tenant",
                name: name.into(),
            });
        }
        let t = self.tenant_obj(name)?;
        Ok(TenantView {
            usage: self.usage(name)?,
            tenant: t.object,
        })
    }

    /// Replaces a tenant's description and limits.
    pub fn update_tenant(
        &mut self,
        caller: &Caller,
        name: &str,
        tenant: Tenant,
    ) -> Result<Versioned<Tenant>, ControlError> {
        caller.require_admin()?;
        if tenant.name != name {
            return Err(ControlError::field(
                "name",
                format!(
                    "'{}' does not match the tenant in the path ('{name}')",
                    tenant.name
                ),
            ));
        }
        validate_tenant(&tenant).map_err(ControlError::Invalid)?;
        self.tenant_obj(name)?;
        let body = to_json(&tenant)?;
        let meta = self.store.transact(|tx| {
            let m = tx.put(
                kind::TENANT,
                name,
                name,
                &body,
                Expect::Any,
                &caller.actor,
                "tenant updated",
            )?;
            tx.audit(Some(name), &caller.actor, "tenant.update", name, &body)?;
            Ok(m)
        })?;
        Ok(Versioned::at(&meta, tenant))
    }

    /// What a tenant uses of its limits.
    pub fn usage(&self, tenant: &str) -> Result<Usage, ControlError> {
        let world = World::load(&self.store)?;
        let mut u = world.usage(tenant, self.uplink_mbps());
        u.table_entries = self
            .compiled
            .as_ref()
            .and_then(|c| c.entries_by_tenant.get(tenant))
            .copied()
            .unwrap_or(0);
        u.stored_bytes = self.store.stored_bytes(tenant)?;
        Ok(u)
    }

    /// Refuses a write that would take a tenant's stored bytes past its limit.
    fn check_stored_bytes(&self, tenant: &str, adding: u64) -> Result<(), ControlError> {
        let allowed = self.tenant_obj(tenant)?.object.limits.max_stored_bytes;
        let current = self.store.stored_bytes(tenant)?;
        QuotaExceeded::check(
            "max_stored_bytes",
            allowed,
            current,
            current.saturating_add(adding),
        )
    }

    fn uplink_mbps(&self) -> u64 {
        self.nic.identify().uplink_gbps as u64 * 1000
    }

    // ---- networks ---------------------------------------------------------------------

    /// Creates a production network (version 1).
    pub fn create_network(
        &mut self,
        caller: &Caller,
        mut net: Network,
        idem: Option<&Idempotency>,
    ) -> Result<(Versioned<Network>, SyncReport), ControlError> {
        let tenant = caller.tenant()?.to_string();
        // The tenant must exist (an admin acting on a tenant that does not is told so).
        self.tenant_obj(&tenant)?;
        validate_network(&net).map_err(ControlError::Invalid)?;
        let mut world = World::load(&self.store)?;
        if world.network(&tenant, &net.name).is_some() {
            return Err(ControlError::Exists {
                kind: "network",
                name: net.name,
            });
        }
        world.check_vni(&tenant, &net)?;
        world.assign_vfs(&self.port, &tenant, &mut net, None)?;
        world.put_network(&tenant, net.clone(), 0);
        let body = to_json(&net)?;
        self.check_stored_bytes(&tenant, body.to_string().len() as u64)?;
        let id = object_id(&tenant, &net.name);
        let actor = caller.actor.clone();
        let ((meta, ()), report) = self.change(&world, |tx| {
            let m = tx.put(
                kind::NETWORK,
                &id,
                &tenant,
                &body,
                Expect::Absent,
                &actor,
                "network created",
            )?;
            tx.audit(
                Some(&tenant),
                &actor,
                "network.create",
                &id,
                &serde_json::json!({"version": m.version}),
            )?;
            let out = Versioned::at(&m, net.clone());
            record_idem(tx, &tenant, idem, 201, &out)?;
            Ok((m, ()))
        })?;
        Ok((Versioned::at(&meta, net), report))
    }

    /// Replaces a network with a new version. `expect`: the version the caller last saw
    /// (`If-Match`), or `None` to overwrite whatever is there.
    pub fn update_network(
        &mut self,
        caller: &Caller,
        name: &str,
        mut net: Network,
        expect: Option<u64>,
        message: &str,
    ) -> Result<(Versioned<Network>, SyncReport), ControlError> {
        let tenant = caller.tenant()?.to_string();
        if net.name != name {
            return Err(ControlError::field(
                "name",
                format!(
                    "'{}' does not match the network in the path ('{name}')",
                    net.name
                ),
            ));
        }
        validate_network(&net).map_err(ControlError::Invalid)?;
        let mut world = World::load(&self.store)?;
        let (current_version, current) = world
            .network(&tenant, name)
            .map(|(v, n)| (v, n.clone()))
            .ok_or_else(|| ControlError::NotFound {
                kind: "network",
                name: name.into(),
            })?;
        if let Some(v) = expect
            && v != current_version
        {
            return Err(ControlError::Store(crate::store::StoreError::Conflict {
                kind: kind::NETWORK.into(),
                id: name.into(),
                expected: v,
                found: current_version,
            }));
        }
        world.check_vni(&tenant, &net)?;
        world.assign_vfs(&self.port, &tenant, &mut net, Some(&current))?;
        world.put_network(&tenant, net.clone(), current_version);
        let body = to_json(&net)?;
        self.check_stored_bytes(&tenant, body.to_string().len() as u64)?;
        let id = object_id(&tenant, name);
        let actor = caller.actor.clone();
        let message = if message.is_empty() {
            "network updated"
        } else {
            message
        };
        let (meta, report) = self.change(&world, |tx| {
            let m = tx.put(
                kind::NETWORK,
                &id,
                &tenant,
                &body,
                Expect::Version(current_version),
                &actor,
                message,
            )?;
            tx.audit(
                Some(&tenant),
                &actor,
                "network.update",
                &id,
                &serde_json::json!({"version": m.version, "message": message}),
            )?;
            Ok(m)
        })?;
        Ok((Versioned::at(&meta, net), report))
    }

    /// A network: the current version, or an earlier one.
    pub fn get_network(
        &self,
        caller: &Caller,
        name: &str,
        version: Option<u64>,
    ) -> Result<Versioned<Network>, ControlError> {
        self.tenant_object(
            kind::NETWORK,
            ("network", "network version"),
            caller,
            name,
            version,
        )
    }

    /// A tenant's object of a kind: the current version, or version `version`. `what` names
    /// the object and its versions in errors; another tenant's object is not found.
    fn tenant_object<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        what: (&'static str, &'static str),
        caller: &Caller,
        name: &str,
        version: Option<u64>,
    ) -> Result<Versioned<T>, ControlError> {
        let tenant = caller.tenant()?;
        let id = object_id(tenant, name);
        let Some(v) = version else {
            return versioned(self.store.get(kind, &id)?.ok_or_else(|| {
                ControlError::NotFound {
                    kind: what.0,
                    name: name.into(),
                }
            })?);
        };
        let r = self
            .store
            .version(kind, &id, v)?
            .filter(|r| r.tenant == tenant)
            .ok_or_else(|| ControlError::NotFound {
                kind: what.1,
                name: format!("{name}@{v}"),
            })?;
        let body = r.body.ok_or_else(|| ControlError::NotFound {
            kind: what.1,
            name: format!("{name}@{v} (a deletion)"),
        })?;
        Ok(Versioned::at(&r.meta, from_json(body)?))
    }

    /// The caller's objects of a kind, by name.
    fn tenant_objects<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        caller: &Caller,
    ) -> Result<Vec<Versioned<T>>, ControlError> {
        self.store
            .list(kind, Some(caller.tenant()?))?
            .into_iter()
            .map(versioned)
            .collect()
    }

    /// The caller's networks.
    pub fn list_networks(&self, caller: &Caller) -> Result<Vec<Versioned<Network>>, ControlError> {
        self.tenant_objects(kind::NETWORK, caller)
    }

    /// Deletes a network; refused while shadows of it are alive.
    pub fn delete_network(
        &mut self,
        caller: &Caller,
        name: &str,
    ) -> Result<SyncReport, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let mut world = World::load(&self.store)?;
        let (version, _) = world
            .network(&tenant, name)
            .ok_or_else(|| ControlError::NotFound {
                kind: "network",
                name: name.into(),
            })?;
        let users: Vec<String> = world.shadows_of(&tenant, name);
        if !users.is_empty() {
            return Err(ControlError::Conflict(format!(
                "network '{name}' has live shadows ({}); complete or delete them first",
                users.join(", ")
            )));
        }
        if world.automations_of(&self.store, &tenant, name)? > 0 {
            return Err(ControlError::Conflict(format!(
                "network '{name}' is watched by automation rules; delete them first"
            )));
        }
        world.remove_network(&tenant, name);
        let id = object_id(&tenant, name);
        let actor = caller.actor.clone();
        let ((), report) = self.change(&world, |tx| {
            tx.delete(
                kind::NETWORK,
                &id,
                Expect::Version(version),
                &actor,
                "network deleted",
            )?;
            tx.audit(
                Some(&tenant),
                &actor,
                "network.delete",
                &id,
                &serde_json::Value::Null,
            )?;
            Ok(())
        })?;
        Ok(report)
    }

    /// A network's history, oldest first.
    pub fn network_history(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Vec<HistoryEntry>, ControlError> {
        let tenant = caller.tenant()?;
        let id = object_id(tenant, name);
        let h = self.store.history(kind::NETWORK, &id)?;
        if h.is_empty() {
            return Err(ControlError::NotFound {
                kind: "network",
                name: name.into(),
            });
        }
        Ok(h.into_iter().map(HistoryEntry::from).collect())
    }

    /// What changed in a network between two versions.
    pub fn diff_network(
        &self,
        caller: &Caller,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Change>, ControlError> {
        let a = self.get_network(caller, name, Some(from))?;
        let b = self.get_network(caller, name, to)?;
        Ok(diff_networks(&a.object, &b.object))
    }

    /// Re-applies an earlier version of a network as its newest version.
    pub fn rollback_network(
        &mut self,
        caller: &Caller,
        name: &str,
        to: u64,
    ) -> Result<(Versioned<Network>, SyncReport), ControlError> {
        let old = self.get_network(caller, name, Some(to))?;
        self.update_network(
            caller,
            name,
            old.object,
            None,
            &format!("rollback to version {to}"),
        )
    }

    // ---- automation -------------------------------------------------------------------

    /// Stores an automation rule.
    pub fn put_automation(
        &mut self,
        caller: &Caller,
        rule: Automation,
    ) -> Result<Versioned<Automation>, ControlError> {
        let tenant = caller.tenant()?.to_string();
        validate_name("automation rule", &rule.name).map_err(|e| ControlError::Invalid(vec![e]))?;
        let world = World::load(&self.store)?;
        let net = world.network(&tenant, &rule.network).map(|(_, n)| n);
        validate_automation(&rule, net).map_err(ControlError::Invalid)?;
        let body = to_json(&rule)?;
        let id = object_id(&tenant, &rule.name);
        let meta = self.store.transact(|tx| {
            let m = tx.put(
                kind::AUTOMATION,
                &id,
                &tenant,
                &body,
                Expect::Any,
                &caller.actor,
                "automation rule stored",
            )?;
            tx.audit(Some(&tenant), &caller.actor, "automation.put", &id, &body)?;
            Ok(m)
        })?;
        Ok(Versioned::at(&meta, rule))
    }

    /// The caller's automation rules.
    pub fn list_automations(
        &self,
        caller: &Caller,
    ) -> Result<Vec<Versioned<Automation>>, ControlError> {
        self.tenant_objects(kind::AUTOMATION, caller)
    }

    /// Deletes an automation rule.
    pub fn delete_automation(&mut self, caller: &Caller, name: &str) -> Result<(), ControlError> {
        let tenant = caller.tenant()?.to_string();
        let id = object_id(&tenant, name);
        if self.store.get(kind::AUTOMATION, &id)?.is_none() {
            return Err(ControlError::NotFound {
                kind: "automation rule",
                name: name.into(),
            });
        }
        self.store.transact(|tx| {
            tx.delete(
                kind::AUTOMATION,
                &id,
                Expect::Any,
                &caller.actor,
                "automation rule deleted",
            )?;
            tx.audit(
                Some(&tenant),
                &caller.actor,
                "automation.delete",
                &id,
                &serde_json::Value::Null,
            )?;
            Ok(())
        })?;
        Ok(())
    }

    /// The audit log: the tenant's entries, or everything for the admin.
    pub fn audit_log(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<Vec<crate::store::AuditRecord>, ControlError> {
        let tenant = if caller.admin {
            caller.tenant.as_deref()
        } else {
            Some(caller.tenant()?)
        };
        Ok(self.store.audit_log(tenant, limit)?)
    }

    /// Diff between two versions of a shadow.
    pub fn diff_shadow(
        &self,
        caller: &Caller,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Change>, ControlError> {
        let a = self.get_shadow(caller, name, Some(from))?;
        let b = self.get_shadow(caller, name, to)?;
        Ok(diff_shadows(&a.object, &b.object))
    }
}

fn record_idem<T: Serialize>(
    tx: &mut Txn<'_>,
    tenant: &str,
    idem: Option<&Idempotency>,
    status: u16,
    body: &T,
) -> Result<(), ControlError> {
    if let Some(i) = idem {
        tx.record_idempotent(tenant, &i.key, &i.fingerprint, status, &to_json(body)?)?;
    }
    Ok(())
}

/// The store id of a tenant's object.
pub fn object_id(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, ControlError> {
    serde_json::to_value(v).map_err(|e| ControlError::Conflict(format!("cannot encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ControlError> {
    serde_json::from_value(v)
        .map_err(|e| ControlError::Conflict(format!("a stored object does not decode: {e}")))
}

fn versioned<T: serde::de::DeserializeOwned>(o: Object) -> Result<Versioned<T>, ControlError> {
    Ok(Versioned {
        version: o.version,
        updated_at_ms: o.updated_at_ms,
        object: from_json(o.body)?,
    })
}

/// A new random bearer token: 32 bytes from the OS, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of a token, hex: tokens are stored only as this.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
