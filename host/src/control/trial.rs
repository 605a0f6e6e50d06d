//! Trial of a block rule (R4 "try it in the shadow first", R7 trial firewall rules): "what
//! would it have blocked" over recorded traffic, without touching production.
//!
//! Two scratch simulated NICs (the cycle-accurate model, programmed through the driver and
//! the reconciler like the production one) are programmed from the shadow's captured
//! network version with the block rules already active on it — one with the candidate rule,
//! one without. Every IP frame of the capture (tunnels looked through, as the shadow's
//! analysis nodes see them) is fed to the port it would enter production by: the VF of the
//! sending VM when the source is a VM on this NIC, else the uplink, VXLAN-encapsulated in the
//! network's VNI toward this NIC as a remote host would send it. The ACL drop counters after
//! each frame say whether it was dropped; a frame the candidate NIC drops and the baseline
//! passes is one the rule would have blocked.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use shadownet_hw::{Port, counters::drop_reason, drop::DropReason, timing::Timing};
use shadownet_sim::{Discard, NicModel};
use shadownet_wire::{EncapParams, EthernetAddress, ParseConfig, TunnelHeader, emit_encap, parse};
use utoipa::ToSchema;

use super::{Caller, ControlError, Controller, World, findings::Finding, kind, object_id, to_json};
use crate::{
    analysis::{detector::PacketMeta, trafficgen::Label},
    driver::{Device, Nic, PortConfig, sim::SimDevice},
    model::{
        Mitigation, MitigationState, Network,
        compile::{SlotAllocator, TenantState, compile},
        mitigation::{TrialReport, VmVolume, Volume},
    },
    reconcile::Reconciler,
    store::Expect,
};

/// Largest capture a trial replays, frames.
pub const MAX_TRIAL_FRAMES: u64 = 1_000_000;

/// Where the recorded traffic comes from.
#[derive(Clone, Debug)]
pub enum CaptureSource {
    /// A capture uploaded with the request.
    Bytes(Vec<u8>),
    /// A pcap/pcapng file on the daemon's host (admin only).
    Path(PathBuf),
    /// A capture stored as an artefact of the mitigation's shadow.
    Artefact(String),
}

/// A trial request as JSON (an uploaded capture is the request body instead).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialRequest {
    /// A capture file on the daemon's host (admin token only).
    #[serde(default)]
    pub pcap: Option<String>,
    /// The name of a capture artefact of the mitigation's shadow.
    #[serde(default)]
    pub artefact: Option<String>,
}

/// A capture stored with a shadow (`PUT /v1/shadows/{s}/captures/{name}`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredCapture {
    /// The shadow.
    pub shadow: String,
    /// The artefact name a trial names it by.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// `pcap` or `pcapng`.
    pub format: String,
}

/// Ground truth stored with a capture of a shadow (`labels.csv` of `shadowctl traffic gen`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredLabels {
    /// The shadow.
    pub shadow: String,
    /// The capture the labels describe.
    pub capture: String,
    /// Frames labelled (every frame of the capture).
    pub frames: u64,
    /// Frames per label (`benign` or the attack class).
    pub per_label: BTreeMap<String, u64>,
}

/// The artefact a stored capture's labels are kept under. A capture's name is one segment
/// of the request path, so it never contains `/` and never collides with this.
fn labels_artefact(capture: &str) -> String {
    format!("{capture}/labels")
}

/// Where a replay's ground truth comes from.
pub(super) enum LabelsSource {
    /// None: the frames are counted as `unlabelled`.
    None,
    /// The labels stored with the capture artefact, if it has any.
    Stored,
    /// A labels file on the daemon's host (admin only, like the capture it goes with).
    Path(PathBuf),
}

/// The capture format by its magic number, if it is one.
fn capture_format(data: &[u8]) -> Option<&'static str> {
    match data.get(..4)? {
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1] => Some("pcap"),
        [0x0a, 0x0d, 0x0d, 0x0a] => Some("pcapng"),
        _ => None,
    }
}

/// One frame as it would enter the NIC.
struct Fed {
    /// The frame's number in the capture, from 1 (as its labels file numbers it).
    index: u64,
    port: Port,
    frame: Vec<u8>,
    meta: PacketMeta,
    len: u64,
    /// The capture's timestamp, ns since the epoch.
    ts_ns: u64,
}

type FlowKey = (IpAddr, IpAddr, u8, u16, u16);

impl<D: Device> Controller<D> {
    /// Stores a recording of a shadow's traffic (pcap or pcapng) as an artefact of the
    /// shadow, replacing one of the same name: what a trial replays with
    /// `{"artefact": name}`. Counted against `max_stored_bytes`, purged with the shadow,
    /// audited (`shadow.capture`).
    pub fn store_shadow_capture(
        &mut self,
        caller: &Caller,
        shadow: &str,
        name: &str,
        data: &[u8],
    ) -> Result<StoredCapture, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let Some(format) = capture_format(data) else {
            return Err(ControlError::field(
                "body",
                "not a pcap or pcapng capture (no capture magic number)",
            ));
        };
        self.check_active_shadow(&tenant, shadow)?;
        let oid = object_id(&tenant, shadow);
        let len = data.len() as u64;
        self.check_artefact_room(&tenant, &oid, name, len)?;
        self.store.transact(|tx| {
            tx.put_artefact(kind::SHADOW, &oid, name, data)?;
            // Ground truth of the capture this one replaces does not describe it.
            tx.delete_artefact(kind::SHADOW, &oid, &labels_artefact(name))?;
            tx.audit(
                Some(&tenant),
                &caller.actor,
                "shadow.capture",
                &oid,
                &serde_json::json!({"name": name, "bytes": len, "format": format}),
            )?;
            Ok(())
        })?;
        Ok(StoredCapture {
            shadow: shadow.to_string(),
            name: name.to_string(),
            bytes: len,
            format: format.into(),
        })
    }

    /// The shadow exists and takes captures (it is not being torn down).
    fn check_active_shadow(&self, tenant: &str, shadow: &str) -> Result<(), ControlError> {
        let world = World::load(&self.store)?;
        let (_, s, _) = world
            .shadow(tenant, shadow)
            .ok_or_else(|| ControlError::NotFound {
                kind: "shadow",
                name: shadow.to_string(),
            })?;
        if s.state != crate::model::ShadowState::Active {
            return Err(ControlError::Conflict(format!(
                "shadow '{shadow}' is being torn down; it takes no more captures"
            )));
        }
        Ok(())
    }

    /// Whether `len` bytes stored as artefact `name` of object `oid` fit the tenant's
    /// `max_stored_bytes` (a replacement frees what it replaces).
    fn check_artefact_room(
        &self,
        tenant: &str,
        oid: &str,
        name: &str,
        len: u64,
    ) -> Result<(), ControlError> {
        let old = self
            .store
            .artefacts(kind::SHADOW, oid)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, size)| size);
        if len > old {
            self.check_stored_bytes(tenant, len - old)?;
        }
        Ok(())
    }

    /// Stores the ground truth of a capture stored with a shadow (`labels.csv` as
    /// `shadowctl traffic gen` writes it: one row per frame of the capture): a loop
    /// replaying the capture then reports per attack class instead of `unlabelled`.
    /// Replaces earlier labels of the capture; storing the capture again drops them.
    /// Counted against `max_stored_bytes`, audited (`shadow.capture_labels`).
    pub fn store_shadow_capture_labels(
        &mut self,
        caller: &Caller,
        shadow: &str,
        capture: &str,
        data: &[u8],
    ) -> Result<StoredLabels, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let labels = read_labels(data, "body", "labels")?;
        let oid = object_id(&tenant, shadow);
        self.check_active_shadow(&tenant, shadow)?;
        // The capture must be there, and have exactly one row per frame.
        let (path, _, _tmp) = self.open_capture(
            caller,
            &tenant,
            Some(shadow),
            CaptureSource::Artefact(capture.to_string()),
        )?;
        let frames = count_frames(&path)?;
        if frames != labels.len() as u64 {
            return Err(ControlError::field(
                "body",
                format!(
                    "labels name {} frames; capture '{capture}' has {frames}",
                    labels.len()
                ),
            ));
        }
        let name = labels_artefact(capture);
        self.check_artefact_room(&tenant, &oid, &name, data.len() as u64)?;
        let mut per_label = BTreeMap::new();
        for l in &labels {
            *per_label.entry(l.name().to_string()).or_insert(0u64) += 1;
        }
        self.store.transact(|tx| {
            tx.put_artefact(kind::SHADOW, &oid, &name, data)?;
            tx.audit(
                Some(&tenant),
                &caller.actor,
                "shadow.capture_labels",
                &oid,
                &serde_json::json!({"capture": capture, "frames": frames, "per_label": per_label}),
            )?;
            Ok(())
        })?;
        Ok(StoredLabels {
            shadow: shadow.to_string(),
            capture: capture.to_string(),
            frames,
            per_label,
        })
    }

    /// Tries a proposed or active mitigation over recorded traffic and keeps the report with
    /// it (a version of the mitigation and an audit record; production is not touched).
    pub fn trial_mitigation(
        &mut self,
        caller: &Caller,
        id: &str,
        source: CaptureSource,
    ) -> Result<TrialReport, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let world = World::load(&self.store)?;
        let t = world
            .tenants
            .get(&tenant)
            .ok_or_else(|| ControlError::NotFound {
                kind: "tenant",
                name: tenant.clone(),
            })?;
        let (version, m) =
            t.mitigations
                .get(id)
                .cloned()
                .ok_or_else(|| ControlError::NotFound {
                    kind: "mitigation",
                    name: id.to_string(),
                })?;
        if !matches!(m.state, MitigationState::Proposed | MitigationState::Active) {
            return Err(ControlError::Conflict(format!(
                "mitigation {id} is {:?}; only proposed or active rules are tried",
                m.state
            )));
        }
        // The shadow's captured tables when it is alive; production's current version else.
        let network: Network = match m.shadow.as_deref().and_then(|s| t.shadows.get(s)) {
            Some((_, _, captured)) => captured.clone(),
            None => t
                .networks
                .get(&m.network)
                .map(|(_, n)| n.clone())
                .ok_or_else(|| ControlError::NotFound {
                    kind: "network",
                    name: m.network.clone(),
                })?,
        };
        let (path, label, _tmp) =
            self.open_capture(caller, &tenant, m.shadow.as_deref(), source)?;
        let findings: Vec<Finding> = match &m.shadow {
            Some(s)
                if self
                    .store
                    .get(kind::SHADOW, &object_id(&tenant, s))?
                    .is_some() =>
            {
                self.store
                    .findings(
                        &tenant,
                        Some((kind::SHADOW, &object_id(&tenant, s))),
                        None,
                        usize::MAX,
                    )?
                    .into_iter()
                    .filter_map(|r| serde_json::from_value(r.body).ok())
                    .collect()
            }
            _ => Vec::new(),
        };
        let others: Vec<&Mitigation> = t
            .mitigations
            .values()
            .map(|(_, x)| x)
            .filter(|x| {
                x.state == MitigationState::Active && x.id != m.id && x.network == m.network
            })
            .collect();
        let mut candidate = m.clone();
        candidate.state = MitigationState::Active;
        let mut with: Vec<&Mitigation> = others.clone();
        with.push(&candidate);

        let (frames, fed, skipped) = frames_to_feed(&path, &network, &self.port)?;
        // A capture of a million frames replays for a while: reads waiting for the
        // controller are answered in between.
        let between = || self.serve_reads();
        let base = run_scratch(&self.port, &tenant, &network, &others, &fed, &between)?;
        let cand = run_scratch(&self.port, &tenant, &network, &with, &fed, &between)?;

        let named = |k: &FlowKey| -> bool { findings.iter().any(|f| finding_names(f, k)) };
        let mut report = TrialReport {
            capture: label,
            at_ms: self.now_ms(),
            frames,
            replayed: fed.len() as u64,
            skipped,
            already_blocked: 0,
            blocked: Volume::default(),
            in_findings: Volume::default(),
            not_in_findings: Volume::default(),
            per_vm: Vec::new(),
        };
        let mut flows: [BTreeSet<FlowKey>; 3] = Default::default();
        let mut per_vm: BTreeMap<(String, &'static str), (Volume, BTreeSet<FlowKey>)> =
            BTreeMap::new();
        let vm_of = |ip: IpAddr| {
            network
                .nodes
                .iter()
                .find(|n| n.ip.parse::<IpAddr>().ok() == Some(ip))
                .map(|n| format!("{}/{}", network.name, n.name))
        };
        for (i, f) in fed.iter().enumerate() {
            if base[i] {
                report.already_blocked += 1;
                continue;
            }
            if !cand[i] {
                continue;
            }
            let k = (
                f.meta.src,
                f.meta.dst,
                f.meta.proto,
                f.meta.sport,
                f.meta.dport,
            );
            let add = |v: &mut Volume| {
                v.packets += 1;
                v.bytes += f.len;
            };
            add(&mut report.blocked);
            flows[0].insert(k);
            if named(&k) {
                add(&mut report.in_findings);
                flows[1].insert(k);
            } else {
                add(&mut report.not_in_findings);
                flows[2].insert(k);
            }
            for (vm, dir) in [(vm_of(f.meta.src), "from_vm"), (vm_of(f.meta.dst), "to_vm")] {
                if let Some(vm) = vm {
                    let e = per_vm.entry((vm, dir)).or_default();
                    add(&mut e.0);
                    e.1.insert(k);
                }
            }
        }
        report.blocked.flows = flows[0].len() as u64;
        report.in_findings.flows = flows[1].len() as u64;
        report.not_in_findings.flows = flows[2].len() as u64;
        report.per_vm = per_vm
            .into_iter()
            .map(|((vm, dir), (mut v, f))| {
                v.flows = f.len() as u64;
                VmVolume {
                    vm,
                    direction: dir.into(),
                    blocked: v,
                }
            })
            .collect();

        let mut stored = m.clone();
        stored.last_trial = Some(report.clone());
        let body = to_json(&stored)?;
        let oid = object_id(&tenant, id);
        let detail = to_json(&report)?;
        self.store.transact(|tx| {
            tx.put(
                kind::MITIGATION,
                &oid,
                &tenant,
                &body,
                Expect::Version(version),
                &caller.actor,
                "mitigation tried",
            )?;
            tx.audit(
                Some(&tenant),
                &caller.actor,
                "mitigation.trial",
                &oid,
                &detail,
            )?;
            Ok(())
        })?;
        Ok(report)
    }

    /// The file to read a capture from, a label for reports, and the scratch copy to remove
    /// when done (uploads and artefacts of `shadow`; a file on the daemon's host needs the
    /// admin token).
    fn open_capture(
        &mut self,
        caller: &Caller,
        tenant: &str,
        shadow: Option<&str>,
        source: CaptureSource,
    ) -> Result<(PathBuf, String, Option<TempFile>), ControlError> {
        Ok(match source {
            CaptureSource::Path(p) => {
                if !caller.admin {
                    return Err(ControlError::Forbidden(
                        "naming a file on the daemon's host needs the admin token; upload the capture instead".into(),
                    ));
                }
                let label = p.display().to_string();
                (p, label, None)
            }
            CaptureSource::Bytes(b) => {
                let p = self.scratch_capture(&b)?;
                (p.clone(), "uploaded capture".to_string(), Some(TempFile(p)))
            }
            CaptureSource::Artefact(name) => {
                let shadow = shadow.ok_or_else(|| {
                    ControlError::field(
                        "artefact",
                        "this mitigation names no shadow to take an artefact from",
                    )
                })?;
                let data = self
                    .store
                    .artefact(kind::SHADOW, &object_id(tenant, shadow), &name)?
                    .ok_or_else(|| ControlError::NotFound {
                        kind: "capture artefact",
                        name: format!("{shadow}/{name}"),
                    })?;
                let p = self.scratch_capture(&data)?;
                (p.clone(), format!("artefact:{name}"), Some(TempFile(p)))
            }
        })
    }

    /// A recorded capture as loop input: each frame enters the NIC where production would
    /// take it in (the sending VM's VF, else the uplink, VXLAN from the source's host), at
    /// its capture time relative to the first frame. Frames that would not cross this NIC
    /// are left out. Returns the frames and how many the capture held.
    ///
    /// With ground truth (`labels`), each frame's class is its label's (`None` for benign
    /// frames); without, every frame is [`super::UNLABELLED`].
    pub(super) fn captured_frames(
        &mut self,
        caller: &Caller,
        shadow: &str,
        source: CaptureSource,
        labels: LabelsSource,
    ) -> Result<(Vec<super::LoopFrame>, u64), ControlError> {
        let tenant = caller.tenant()?.to_string();
        let world = World::load(&self.store)?;
        let (_, _, network) =
            world
                .shadow(&tenant, shadow)
                .ok_or_else(|| ControlError::NotFound {
                    kind: "shadow",
                    name: shadow.to_string(),
                })?;
        let network = network.clone();
        let labels = match (labels, &source) {
            (LabelsSource::None, _) => None,
            (LabelsSource::Stored, CaptureSource::Artefact(name)) => {
                let text = self.store.artefact(
                    kind::SHADOW,
                    &object_id(&tenant, shadow),
                    &labels_artefact(name),
                )?;
                text.map(|t| read_labels(&t, "labels", &format!("labels of capture '{name}'")))
                    .transpose()?
            }
            (LabelsSource::Stored, _) => None,
            (LabelsSource::Path(p), _) => {
                if !caller.admin {
                    return Err(ControlError::Forbidden(
                        "naming a file on the daemon's host needs the admin token".into(),
                    ));
                }
                let data = std::fs::read(&p)
                    .map_err(|e| ControlError::field("labels", format!("{}: {e}", p.display())))?;
                Some(read_labels(&data, "labels", &p.display().to_string())?)
            }
        };
        let (path, _, _tmp) = self.open_capture(caller, &tenant, Some(shadow), source)?;
        let (frames, fed, _) = frames_to_feed(&path, &network, &self.port)?;
        if let Some(l) = &labels
            && l.len() as u64 != frames
        {
            return Err(ControlError::field(
                "labels",
                format!(
                    "the labels name {} frames; the capture has {frames}",
                    l.len()
                ),
            ));
        }
        let t0 = fed.first().map_or(0, |f| f.ts_ns);
        let mut last = 0;
        let out = fed
            .into_iter()
            .map(|f| {
                // Captures can step back in time (merged files); arrivals cannot.
                last = f.ts_ns.saturating_sub(t0).max(last);
                let attack = match &labels {
                    None => Some(super::UNLABELLED.to_string()),
                    Some(l) => match l.get((f.index - 1) as usize) {
                        Some(Label::Attack(c)) => Some(c.name().to_string()),
                        _ => None,
                    },
                };
                super::LoopFrame {
                    port: f.port,
                    at_ns: last,
                    frame: f.frame,
                    attack,
                }
            })
            .collect();
        Ok((out, frames))
    }

    /// Writes an uploaded or stored capture to a scratch file the capture reader can open.
    fn scratch_capture(&mut self, data: &[u8]) -> Result<PathBuf, ControlError> {
        let dir = self.sim_out.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ControlError::Conflict(format!("{}: {e}", dir.display())))?;
        let n = self.injections;
        self.injections += 1;
        let p = dir.join(format!("trial-{}-{n}.pcap", std::process::id()));
        std::fs::write(&p, data)
            .map_err(|e| ControlError::Conflict(format!("{}: {e}", p.display())))?;
        Ok(p)
    }
}

/// A labels file's rows, or a 4xx on the request's `field` naming `what` and the line that
/// is wrong.
fn read_labels(data: &[u8], field: &str, what: &str) -> Result<Vec<Label>, ControlError> {
    let text = std::str::from_utf8(data)
        .map_err(|e| ControlError::field(field, format!("{what}: not UTF-8 text: {e}")))?;
    crate::analysis::trafficgen::parse_labels(text)
        .map_err(|e| ControlError::field(field, format!("{what}: {e}")))
}

/// Frames in a capture file.
fn count_frames(path: &Path) -> Result<u64, ControlError> {
    let mut r = shadownet_capture::CaptureReader::open(path)
        .map_err(|e| ControlError::field("capture", e.to_string()))?;
    let mut buf = Vec::new();
    let mut n = 0u64;
    while let Some(rec) = r.next_into(&mut buf) {
        rec.map_err(|e| ControlError::field("capture", e.to_string()))?;
        n += 1;
    }
    Ok(n)
}

/// Removes a scratch capture when the trial is done.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether a finding names the flow of a packet (either orientation; ports and protocol only
/// when the finding has them).
fn finding_names(f: &Finding, k: &FlowKey) -> bool {
    let (Ok(fs), Ok(fd)) = (f.src_ip.parse::<IpAddr>(), f.dest_ip.parse::<IpAddr>()) else {
        return false;
    };
    let proto = f
        .proto
        .as_deref()
        .and_then(super::telemetry::protocol_number);
    if proto.is_some_and(|p| p != k.2) {
        return false;
    }
    let ports = |a: Option<u16>, b: Option<u16>, x: u16, y: u16| {
        a.is_none_or(|a| a == x) && b.is_none_or(|b| b == y)
    };
    (fs == k.0 && fd == k.1 && ports(f.src_port, f.dest_port, k.3, k.4))
        || (fs == k.1 && fd == k.0 && ports(f.src_port, f.dest_port, k.4, k.3))
}

/// Reads the capture and decides each frame's way in. Returns frames read, frames to feed,
/// frames skipped.
fn frames_to_feed(
    path: &Path,
    net: &Network,
    port: &PortConfig,
) -> Result<(u64, Vec<Fed>, u64), ControlError> {
    let mut r = shadownet_capture::CaptureReader::open(path)
        .map_err(|e| ControlError::field("capture", e.to_string()))?;
    let cfg = ParseConfig::default();
    let node = |ip: IpAddr| {
        net.nodes
            .iter()
            .find(|n| n.ip.parse::<IpAddr>().ok() == Some(ip))
    };
    let local = |ip: IpAddr| {
        node(ip).and_then(|n| {
            n.vf.filter(|_| crate::model::compile::local_node(port, &n.host))
        })
    };
    let mut buf = Vec::new();
    let (mut frames, mut skipped) = (0u64, 0u64);
    let mut out = Vec::new();
    while let Some(rec) = r.next_into(&mut buf) {
        let ts_ns = rec
            .map_err(|e| ControlError::field("capture", e.to_string()))?
            .timestamp_ns;
        frames += 1;
        if frames > MAX_TRIAL_FRAMES {
            return Err(ControlError::field(
                "capture",
                format!("more than {MAX_TRIAL_FRAMES} frames; cut it down"),
            ));
        }
        let Some((mut inner, meta)) = innermost(&buf, &cfg) else {
            skipped += 1;
            continue;
        };
        // The shadow saw the frame with the MACs of the shadow's own hops; production would
        // see the VM's own MAC on the VM's side.
        let mac_of = |ip: IpAddr| {
            node(ip)
                .and_then(|n| n.mac.parse::<shadownet_hw::layout::Mac>().ok())
                .map(|m| m.0)
        };
        if let Some(vf) = local(meta.src) {
            if let Some(m) = mac_of(meta.src) {
                inner[6..12].copy_from_slice(&m);
            }
            out.push(Fed {
                index: frames,
                port: Port::Vport(vf),
                len: inner.len() as u64,
                frame: inner,
                meta,
                ts_ns,
            });
            continue;
        }
        if local(meta.dst).is_none() {
            skipped += 1;
            continue;
        }
        if let Some(m) = mac_of(meta.dst) {
            inner[0..6].copy_from_slice(&m);
        }
        // From outside: as a remote host (the source's own host when it is a node elsewhere)
        // would send it to this NIC.
        let to = match (meta.src, port.local_ipv4, port.local_ipv6) {
            (IpAddr::V6(_), _, Some(v6)) => IpAddr::V6(v6),
            (_, Some(v4), _) => IpAddr::V4(v4),
            (_, None, Some(v6)) => IpAddr::V6(v6),
            _ => {
                skipped += 1;
                continue;
            }
        };
        let from = node(meta.src)
            .and_then(|n| n.host.parse::<IpAddr>().ok())
            .filter(|h| h.is_ipv4() == to.is_ipv4())
            .unwrap_or(if to.is_ipv4() {
                IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1))
            } else {
                IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 1))
            });
        let params = EncapParams {
            src_mac: EthernetAddress([0x02, 0, 0, 0, 0xee, 0x01]),
            dst_mac: EthernetAddress(port.local_mac.0),
            src_ip: from,
            dst_ip: to,
            udp_src_port: 49_152 | (meta.sport & 0x3fff),
            udp_dst_port: 4789,
            ttl: 64,
            tunnel: TunnelHeader::Vxlan { vni: net.vni },
        };
        let mut frame = vec![0u8; inner.len() + shadownet_wire::MAX_ENCAP_OVERHEAD];
        let Ok(n) = emit_encap(&params, &inner, &mut frame) else {
            skipped += 1;
            continue;
        };
        frame.truncate(n);
        out.push(Fed {
            index: frames,
            port: Port::Uplink,
            len: inner.len() as u64,
            frame,
            meta,
            ts_ns,
        });
    }
    Ok((frames, out, skipped))
}

/// The innermost Ethernet frame (tunnels looked through) and its fields, for IP frames.
fn innermost(frame: &[u8], cfg: &ParseConfig) -> Option<(Vec<u8>, PacketMeta)> {
    let mut bytes = frame;
    let mut h = parse(bytes, cfg).ok()?;
    for _ in 0..2 {
        match h.inner_frame(bytes) {
            Some(inner) if !inner.is_empty() => {
                bytes = inner;
                h = parse(bytes, cfg).ok()?;
            }
            _ => break,
        }
    }
    let meta = PacketMeta::from_frame(0, bytes, cfg).ok()??;
    Some((bytes.to_vec(), meta))
}

/// Programs a scratch simulated NIC with one network and block rules, feeds it the frames,
/// and says for each whether its ACL dropped it. `between` is called every few thousand
/// frames.
fn run_scratch(
    port: &PortConfig,
    tenant: &str,
    net: &Network,
    blocks: &[&Mitigation],
    fed: &[Fed],
    between: &dyn Fn(),
) -> Result<Vec<bool>, ControlError> {
    let scratch = |e: String| ControlError::Conflict(format!("the scratch NIC: {e}"));
    let model = NicModel::new(Timing::DEFAULT).map_err(|e| scratch(e.to_string()))?;
    let mut nic = Nic::open(SimDevice::new(model))?;
    nic.configure_port(port)?;
    let compiled = compile(
        port,
        &[TenantState {
            tenant,
            networks: vec![net],
            shadows: Vec::new(),
            blocks: blocks.to_vec(),
        }],
        &mut SlotAllocator::default(),
    )?;
    Reconciler::new().reconcile(&mut nic, &compiled.plan)?;
    nic.set_enabled(true, false)?;
    let ids = [
        drop_reason(DropReason::AclDeny),
        drop_reason(DropReason::AclDefaultDeny),
        drop_reason(DropReason::AclPoliced),
    ];
    let acl_drops = |nic: &mut Nic<SimDevice>| -> Result<u64, ControlError> {
        let s = nic.snapshot_counters()?;
        Ok(ids.iter().map(|i| s.get(*i)).sum())
    };
    let mut last = acl_drops(&mut nic)?;
    let mut out = Vec::with_capacity(fed.len());
    // At the capture's own pace (a rate limit's verdict depends on it), kept in time order
    // and at least 10 ns apart. Only ACL drops are counted, so frames waiting on one
    // another change nothing.
    let first_ns = fed.first().map_or(0, |f| f.ts_ns);
    let mut t = 1_000_000u64;
    for (i, f) in fed.iter().enumerate() {
        if i % 4096 == 4095 {
            between();
        }
        let at = 1_000_000u64.saturating_add(f.ts_ns.saturating_sub(first_ns).saturating_mul(1000));
        t = at.max(t);
        {
            let mut m = nic.device().model();
            m.receive(f.port, &f.frame, t, &mut Discard);
        }
        t += 10_000;
        let now = acl_drops(&mut nic)?;
        out.push(now > last);
        last = now;
    }
    nic.device().model().finish(&mut Discard);
    Ok(out)
}
