//! Production traffic through the simulated NIC with a shadow's analysis in the loop: the
//! closed loop of R3, R4 and R8 on one clock.
//!
//! Frames enter the production NIC's ports at their times. What the NIC sends toward the
//! shadow (mirror copies, or redirected frames in redirect mode) reaches the shadow's tap
//! ([`ShadowTap`]: decapsulation, loss accounting, the built-in detector, honeypots, the
//! redirect gate) after the fabric's one-way latency. Detector alerts become EVE alerts and
//! are ingested as findings ([`Controller::ingest_findings`]): correlated to production,
//! grouped into incidents, and — with the tenant's policy in `auto` mode — turned into block
//! rules programmed into the production NIC's ACL. In redirect mode the gate's releases go
//! back into the NIC on the uplink and are delivered to production.
//!
//! Time: the NIC's clock is the simulation's (picoseconds). Host work (the tap, the ingest
//! with its store transaction, NIC programming and read-back) is measured in wall time.
//! [`LoopRequest::control_delay_ns`] says how that host time is accounted for: `None`
//! ingests as soon as findings reach the shadow, so the block is in the NIC earlier than it
//! would be (a measuring run); `Some(d)` holds findings `d` ns of NIC time before they are
//! ingested, so the block becomes active when the measured host work would have finished.
//! Running once without and once with the delay measured by the first run gives honest
//! per-packet outcomes (the simulation and the detector are deterministic).
//!
//! Suricata: when the daemon supervises one ([`Controller::set_suricata`]), a generated loop
//! also writes everything the shadow received to a capture in the daemon's data directory,
//! has Suricata analyse it after the run, and ingests its alerts as findings of the shadow
//! ([`SuricataLoop`]; alerts of low severity are counted, not ingested). Those findings are
//! correlated and acted on like the detector's, but after the run: the built-in detector is
//! the only analysis in NIC time.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::Instant,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shadownet_capture::PcapWriter;
use shadownet_hw::Port;
use shadownet_sim::{Departure, Sink};
use shadownet_wire::{
    EncapParams, EthernetAddress, MAX_ENCAP_OVERHEAD, ParseConfig, TunnelHeader, emit_encap, parse,
    release_frame,
};
use utoipa::ToSchema;

use super::{
    Caller, ControlError, Controller, World,
    findings::{IngestReport, PolicyAction, ShadowRef},
    nic::Backend,
    trial::{CaptureSource, LabelsSource},
};
use crate::{
    analysis::{
        detector::DetectorConfig,
        eve::{
            FindingContext, Shadownet, alert_from_detector, alert_from_honeypot, honeypot_signature,
        },
        honeypot::HoneypotSpec,
        tap::{GateVerdict, ShadowTap, TapConfig, TapError},
        trafficgen::{Label, Scenario, generate},
    },
    model::ShadowMode,
};

/// One production frame fed into the NIC.
#[derive(Clone, Debug)]
pub struct LoopFrame {
    /// The port it arrives on.
    pub port: Port,
    /// When its last byte arrives, ns from the start of the run.
    pub at_ns: u64,
    /// The frame as it arrives (tunnelled on the uplink).
    pub frame: Vec<u8>,
    /// Ground truth: the attack class it belongs to, if any (for the report only).
    pub attack: Option<String>,
}

/// A run of production traffic with the shadow's analysis in the loop.
#[derive(Clone, Debug)]
pub struct LoopRequest {
    /// The caller's shadow whose analysis is in the loop.
    pub shadow: String,
    /// Frames in arrival order.
    pub frames: Vec<LoopFrame>,
    /// The built-in detector's configuration.
    pub detector: DetectorConfig,
    /// Redirect mode: score from which the gate keeps a frame (and its source) from
    /// production.
    pub gate_score: f32,
    /// One-way latency between the NIC and the shadow's analysis node, ns.
    pub fabric_ns: u64,
    /// NIC time findings wait before they are ingested (see the module's documentation).
    pub control_delay_ns: Option<u64>,
    /// Honeypots in the shadow besides its `honeypot` analysis nodes (which the run always
    /// deploys).
    pub honeypots: Vec<HoneypotSpec>,
    /// Where to write the shadow's traffic, decapsulated, as the analysis nodes saw it, with
    /// the honeypots' answers (a pcap for Suricata).
    pub shadow_capture: Option<PathBuf>,
}

/// One ingest of findings during the run.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LoopIngest {
    /// NIC time the findings were raised (the latest of the batch), ns from the start.
    pub raised_ns: u64,
    /// NIC time they were ingested, ns from the start.
    pub ingested_ns: u64,
    /// Wall time of the ingest: correlation, store transaction, NIC programming and
    /// read-back, ns.
    pub wall_ns: u64,
    /// Cycles the NIC's embedded cores spent on the table commands of the ingest.
    pub firmware_cycles: u64,
    /// NIC time the block rules of the ingest were active, ns from the start: the ingest's
    /// NIC time when findings were held back by the host work
    /// ([`LoopRequest::control_delay_ns`]), else the ingest's NIC time plus its own wall time
    /// and firmware cycles.
    pub active_ns: Option<u64>,
    /// What the ingest did.
    pub report: IngestReport,
}

/// Counters per ground-truth class.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct ClassOutcome {
    /// Frames of the class fed into the NIC.
    pub fed: u64,
    /// Of them, delivered by the NIC on the production path (to a VM, toward another host
    /// or the host's stack), released frames included.
    pub delivered: u64,
    /// Delivered after the class's first frame was delivered.
    pub delivered_after_first: u64,
    /// Delivered although they arrived at the NIC after the class was detected in the
    /// shadow (what the shadow knew but production had not yet acted on).
    pub delivered_after_detected: u64,
    /// Delivered although they arrived at the NIC when a block rule of the run was already
    /// active (the rule did not cover them).
    pub delivered_after_block: u64,
    /// NIC time of the class's first frame, ns from the start.
    pub first_ns: Option<u64>,
    /// NIC time the first alert (the detector's or a honeypot's) about the class's frames
    /// reached the shadow.
    pub detected_ns: Option<u64>,
    /// Redirect mode: frames of the class the gate kept from production.
    pub withheld: u64,
    /// Redirect mode: frames of the class the gate released.
    pub released: u64,
    /// Redirect mode: of them, released after the class was detected.
    pub released_after_detected: u64,
}

/// What a run did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LoopReport {
    /// The shadow.
    pub shadow: String,
    /// `mirror` or `redirect`.
    pub mode: String,
    /// NIC clock period, ps.
    pub cycle_ps: u64,
    /// NIC time the run started at (ps since the model's power-on).
    pub start_ps: u64,
    /// Frames fed (releases not included).
    pub frames: u64,
    /// Frames the NIC sent toward the shadow.
    pub shadow_frames: u64,
    /// Mirror loss the tap counted (sequence gaps).
    pub shadow_lost: u64,
    /// Of the frames toward the shadow, second copies of a frame between two VMs of this NIC
    /// (one leaving, one entering): analysed and captured once.
    pub shadow_duplicates: u64,
    /// Detector alerts raised.
    pub alerts: u64,
    /// Redirect mode: releases fed back into the NIC.
    pub releases: u64,
    /// Honeypot replies (they stay in the shadow).
    pub honeypot_replies: u64,
    /// Exchanges with the honeypots (probes, connections, data, closes).
    pub honeypot_interactions: u64,
    /// Alerts the honeypots raised (one a second per peer, decoy and signature at most),
    /// ingested as findings like the detector's.
    pub honeypot_alerts: u64,
    /// Ingests, in order.
    pub ingests: Vec<LoopIngest>,
    /// Per ground-truth class (`benign` or the attack class).
    pub classes: BTreeMap<String, ClassOutcome>,
    /// Wall time of the whole run, ns.
    pub wall_ns: u64,
    /// What the daemon's supervised Suricata made of the shadow's traffic, when the daemon
    /// runs one (generated loops only). Its findings are ingested after the run, not in NIC
    /// time: see [`SuricataLoop`].
    pub suricata: Option<SuricataLoop>,
}

/// The supervised Suricata's part in a loop run.
///
/// Timing: the built-in detector acts in NIC time, while the traffic runs. Suricata analyses
/// the capture of everything the shadow received after the run (offline, as one capture
/// file), and its alerts are ingested then: they are correlated, grouped into incidents and
/// acted on by the mitigation policy like any finding, but the blocks they make take effect
/// after the run and are not part of the run's per-class counts.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct SuricataLoop {
    /// The capture Suricata analysed (in the daemon's data directory).
    pub capture: String,
    /// EVE events Suricata wrote for it.
    pub events: u64,
    /// Of them, alerts.
    pub alerts: u64,
    /// Alerts per signature id.
    pub alerts_by_sid: BTreeMap<u64, u64>,
    /// Alerts not ingested because their severity is above [`SURICATA_MAX_SEVERITY`] (the
    /// bundled rules' protocol logging: HTTP requests, DNS queries, TLS SNI).
    pub low_severity: u64,
    /// Findings stored from the alerts.
    pub accepted: u64,
    /// Of them, findings correlated to a production VM.
    pub correlated: u64,
    /// Incidents opened or joined.
    pub incidents: Vec<u64>,
    /// What the mitigation policy did about them.
    pub mitigations: Vec<PolicyAction>,
    /// Wall time of the analysis, ns.
    pub analysis_ns: u64,
    /// Wall time of the ingest, ns.
    pub ingest_ns: u64,
    /// Why Suricata's part failed (the run's other results stand).
    pub error: Option<String>,
}

/// Least urgent Suricata severity the loop ingests (1 high, 2 medium, 3 low). Low-severity
/// alerts are the bundled rules' `misc-activity` logging of ordinary traffic; ingested, they
/// would join the incidents of real attacks on the same VM and the mitigation policy, which
/// blocks every outside source of a qualifying incident, would block ordinary clients.
pub const SURICATA_MAX_SEVERITY: u64 = 2;

/// Most alerts ingested in one batch.
const SURICATA_BATCH: usize = 10_000;

impl LoopReport {
    /// NIC time, ns from the start, at which the first block rule was active.
    pub fn first_block_ns(&self) -> Option<u64> {
        self.ingests.iter().find_map(|i| i.active_ns)
    }
}

/// Generated traffic run through the production NIC with a shadow's analysis in the loop
/// (`POST /v1/shadows/{shadow}/loop`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratedLoop {
    /// The traffic, generated: `shadowctl traffic gen`'s scenario (seed, duration_s, subnet,
    /// hosts, benign_pps, attacks, mix). Its internal hosts that are VMs of the shadow's
    /// network on this NIC send from their VF; traffic to them from elsewhere arrives on the
    /// uplink. Exactly one of `scenario`, `artefact` and `pcap`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scenario: Option<Scenario>,
    /// The traffic, recorded: a capture stored with the shadow
    /// (`PUT /v1/shadows/{shadow}/captures/{name}`), replayed at its own timing; frames
    /// enter where production would take them in (the sending VM's VF, else the uplink).
    /// With labels stored for it (`PUT /v1/shadows/{shadow}/captures/{name}/labels`) the
    /// report counts its frames per attack class; without, as class `unlabelled`.
    #[serde(default)]
    pub artefact: Option<String>,
    /// The traffic, recorded: a pcap/pcapng file on the daemon's host (admin token only),
    /// replayed like `artefact`.
    #[serde(default)]
    pub pcap: Option<String>,
    /// With `pcap`: its ground truth, a `labels.csv` file on the daemon's host (one row
    /// per frame, as `shadowctl traffic gen` writes it).
    #[serde(default)]
    pub labels: Option<String>,
    /// Seconds the built-in detector learns before it scores (default 20).
    #[serde(default)]
    pub baseline_s: Option<f64>,
    /// Detector alert threshold (default the detector's).
    #[serde(default)]
    pub alert_threshold: Option<f32>,
    /// NIC time findings wait before they are ingested, ms (default 0: at once).
    #[serde(default)]
    pub control_delay_ms: Option<f64>,
    /// One-way fabric latency between the NIC and the analysis node, µs (default 5).
    #[serde(default)]
    pub fabric_us: Option<f64>,
}

/// The report's class of a recorded capture's frames (they carry no ground truth).
pub const UNLABELLED: &str = "unlabelled";

/// A honeypot raises one alert a second at most per peer, decoy and signature (a scan of a
/// thousand ports is a thousand interactions, not a thousand findings).
const HONEYPOT_ALERT_INTERVAL_NS: u64 = 1_000_000_000;

/// Most frames a generated loop may have.
pub const MAX_LOOP_FRAMES: usize = 2_000_000;

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Feed the next input frame.
    Input,
    /// Handle the earliest pending release or ingest.
    Due,
    /// Let the NIC send what it still holds.
    Finish,
}

/// What is pending at a NIC time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// A release goes back into the NIC on the uplink.
    Release(Vec<u8>),
    /// Findings raised up to here are ingested.
    Ingest(u64),
}

/// A frame the NIC transmitted.
struct Sent {
    port: Port,
    copy: u8,
    start_ps: u64,
    bytes: Vec<u8>,
}

/// Collects the NIC's transmissions.
#[derive(Default)]
struct Collect(Vec<Sent>);

impl Sink for Collect {
    fn transmit(&mut self, d: &Departure, bytes: &[u8]) {
        self.0.push(Sent {
            port: d.frame.port(),
            copy: d.frame.copy(),
            start_ps: d.start_ps,
            bytes: bytes.to_vec(),
        });
    }
}

/// Loop steps (frames fed, findings ingested, …) between two turns for waiting reads.
const READS_EVERY: u64 = 256;

/// A frame's tunnel VNI (if tunnelled) and the production frame it carries (itself when not
/// tunnelled).
fn unwrap_tunnel(frame: &[u8]) -> Option<(Option<u32>, &[u8])> {
    let h = parse(frame, &ParseConfig::default()).ok()?;
    match h.tunnel {
        Some(t) => Some((Some(t.vni), h.inner_frame(frame)?)),
        None => Some((None, frame)),
    }
}

/// The part of a production frame that survives the NIC unchanged: from the IP header on
/// (MACs are rewritten on delivery, tunnels added or removed).
fn l3_key(production: &[u8]) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let l3 = production.get(14..)?;
    let mut s = std::collections::hash_map::DefaultHasher::new();
    l3.hash(&mut s);
    Some(s.finish())
}

/// [`l3_key`] of the production frame `frame` is or carries.
fn payload_key(frame: &[u8]) -> Option<u64> {
    unwrap_tunnel(frame).and_then(|(_, inner)| l3_key(inner))
}

fn class_name(attack: Option<&String>) -> &str {
    attack.map_or("benign", String::as_str)
}

/// The report's counters of a frame's class, allocating its name only the first time (this
/// runs for every frame).
fn class_entry<'a>(
    classes: &'a mut BTreeMap<String, ClassOutcome>,
    attack: Option<&String>,
) -> &'a mut ClassOutcome {
    let name = class_name(attack);
    if !classes.contains_key(name) {
        classes.insert(name.to_string(), ClassOutcome::default());
    }
    classes.get_mut(name).expect("inserted above")
}

impl<D: Backend> Controller<D> {
    /// Runs `req.frames` through the simulated production NIC with the shadow's analysis in
    /// the loop (see the module's documentation).
    pub fn run_shadow_loop(
        &mut self,
        caller: &Caller,
        req: LoopRequest,
    ) -> Result<LoopReport, ControlError> {
        let wall0 = Instant::now();
        let tenant = caller.tenant()?.to_string();
        let world = World::load(&self.store)?;
        let (_, shadow, network) =
            world
                .shadow(&tenant, &req.shadow)
                .cloned()
                .ok_or_else(|| ControlError::NotFound {
                    kind: "shadow",
                    name: req.shadow.clone(),
                })?;
        if req.frames.windows(2).any(|w| w[1].at_ns < w[0].at_ns) {
            return Err(ControlError::field(
                "frames",
                "frames must come in arrival order".to_string(),
            ));
        }
        let detector = req.detector.clone();
        // The shadow's own honeypot nodes, then any the request adds.
        let decoys = super::honeypots::decoys(&tenant, &shadow);
        let mut decoy_names: HashMap<Ipv4Addr, String> =
            decoys.iter().map(|d| (d.spec.ip, d.name.clone())).collect();
        for h in &req.honeypots {
            if decoy_names.contains_key(&h.ip) {
                return Err(ControlError::field(
                    "honeypots",
                    format!(
                        "{} is already a honeypot node of shadow '{}'",
                        h.ip, shadow.name
                    ),
                ));
            }
            decoy_names.insert(h.ip, format!("honeypot {}", h.ip));
        }
        let mut tap = ShadowTap::new(TapConfig {
            vni: shadow.vni,
            detector: detector.clone(),
            honeypots: decoys
                .into_iter()
                .map(|d| d.spec)
                .chain(req.honeypots.iter().cloned())
                .collect(),
            gate_score: req.gate_score,
        })
        .map_err(|e| match e {
            TapError::Honeypot { .. } => ControlError::field("honeypots", e.to_string()),
            _ => ControlError::field("detector", e.to_string()),
        })?;
        // Last honeypot alert per (peer, decoy, signature), NIC ns: one a second at most.
        let mut decoy_alerted: HashMap<(Ipv4Addr, Ipv4Addr, u64), u64> = HashMap::new();
        let ctx = FindingContext {
            in_iface: Some(format!("shadow-{}", shadow.name)),
            shadownet: Shadownet {
                tenant: Some(tenant.clone()),
                network: Some(network.name.clone()),
                shadow: Some(shadow.name.clone()),
                session: Some(shadow.session),
                shadow_vni: Some(shadow.vni),
                ..Shadownet::default()
            },
            community_id_seed: 0,
            alert_threshold: detector.alert_threshold,
        };
        let mut capture = match &req.shadow_capture {
            Some(p) => Some(
                PcapWriter::create(p, 65_535)
                    .map_err(|e| ControlError::Conflict(format!("{}: {e}", p.display())))?,
            ),
            None => None,
        };

        let (start_ps, cycle_ps) = {
            let model = self.sim_model()?;
            let cycle_ps = 1_000_000_000 / u64::from(model.timing().clock_khz.max(1));
            // Arrivals must come after everything the model has seen.
            let start = model.stats().last_event_ps.max(model.last_tx_end_ps()) + 1_000_000;
            (start, cycle_ps)
        };
        // The findings' clock: the controller's, at the start of the run.
        let epoch_ns = u64::try_from(self.now_ms()).unwrap_or(0) * 1_000_000;

        let mut truth: HashMap<u64, (Option<String>, u64)> = HashMap::new();
        let mut classes: BTreeMap<String, ClassOutcome> = BTreeMap::new();
        for f in &req.frames {
            let c = class_entry(&mut classes, f.attack.as_ref());
            c.fed += 1;
            c.first_ns.get_or_insert(f.at_ns);
            if let Some(k) = payload_key(&f.frame) {
                truth
                    .entry(k)
                    .or_insert_with(|| (f.attack.clone(), f.at_ns));
            }
        }
        let mut report = LoopReport {
            shadow: shadow.name.clone(),
            mode: match shadow.spec.mode {
                ShadowMode::Mirror => "mirror",
                ShadowMode::Redirect => "redirect",
            }
            .into(),
            cycle_ps,
            start_ps,
            frames: req.frames.len() as u64,
            shadow_frames: 0,
            shadow_lost: 0,
            shadow_duplicates: 0,
            alerts: 0,
            releases: 0,
            honeypot_replies: 0,
            honeypot_interactions: 0,
            honeypot_alerts: 0,
            ingests: Vec::new(),
            classes,
            wall_ns: 0,
            suricata: None,
        };

        let mut due: BinaryHeap<Reverse<(u64, u64, Due)>> = BinaryHeap::new();
        let mut due_seq = 0u64;
        let mut findings: Vec<(u64, Value)> = Vec::new();
        let mut sink = Collect::default();
        let mut release_buf = vec![0u8; 16 * 1024];
        let mut next = 0usize;
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps.is_multiple_of(READS_EVERY) {
                // A run can take a minute: `GET`s waiting for the controller are answered
                // between its steps (what the run has stored so far is what they see).
                self.serve_reads();
            }
            let input_at = req.frames.get(next).map(|f| f.at_ns);
            let due_at = due.peek().map(|Reverse((t, _, _))| *t);
            let (now_ns, step) = match (input_at, due_at) {
                (None, None) => (0, Step::Finish),
                (Some(i), Some(d)) if d < i => (d, Step::Due),
                (Some(i), _) => (i, Step::Input),
                (None, Some(d)) => (d, Step::Due),
            };
            if step == Step::Finish {
                // Nothing left to feed: what the NIC still holds leaves now, and goes through
                // the same accounting below (it may raise findings or releases).
                self.sim_model()?.finish(&mut sink);
                if sink.0.is_empty() {
                    break;
                }
            } else if step == Step::Input {
                let f = &req.frames[next];
                next += 1;
                let mut model = self.sim_model()?;
                model.receive(f.port, &f.frame, start_ps + now_ns * 1000, &mut sink);
            } else if let Some(Reverse((_, _, item))) = due.pop() {
                match item {
                    Due::Release(bytes) => {
                        report.releases += 1;
                        let mut model = self.sim_model()?;
                        model.receive(Port::Uplink, &bytes, start_ps + now_ns * 1000, &mut sink);
                    }
                    Due::Ingest(raised_ns) => {
                        let batch: Vec<Value> = findings.drain(..).map(|(_, v)| v).collect();
                        if !batch.is_empty() {
                            let fw0 = self.fw_cycles();
                            let t = Instant::now();
                            let r = self.ingest_findings(
                                ShadowRef::Vni(shadow.vni),
                                batch,
                                &caller.actor,
                            )?;
                            let wall_ns = t.elapsed().as_nanos() as u64;
                            // The gate refuses what the NIC now blocks.
                            for a in r.activations().filter(|a| !a.rule.is_rate_limit()) {
                                if let Some(ip) =
                                    a.rule.src.split('/').next().and_then(|s| s.parse().ok())
                                {
                                    tap.block(ip);
                                }
                            }
                            let fw = self.fw_cycles().saturating_sub(fw0);
                            // Held back by the host work already (a second run), the rule is
                            // in the NIC from this NIC time on; otherwise it would be after
                            // this ingest's own host work.
                            let active_ns =
                                r.activations().next().map(|_| match req.control_delay_ns {
                                    Some(_) => now_ns,
                                    None => now_ns + wall_ns + fw * cycle_ps / 1000,
                                });
                            report.ingests.push(LoopIngest {
                                raised_ns,
                                ingested_ns: now_ns,
                                wall_ns,
                                firmware_cycles: fw,
                                active_ns,
                                report: r,
                            });
                        }
                    }
                }
            }
            // What the NIC sent, in the order it sent it.
            let departures = std::mem::take(&mut sink.0);
            for d in departures {
                let wire_ps = {
                    let model = self.sim_model()?;
                    model.wire_ps(d.port, d.bytes.len())
                };
                let end_ns = (d.start_ps + wire_ps).saturating_sub(start_ps) / 1000;
                let bytes = &d.bytes;
                // Parsed once: whether it is the shadow's, and the production frame inside.
                let unwrapped = unwrap_tunnel(bytes);
                let truth_of = unwrapped
                    .and_then(|(_, inner)| l3_key(inner))
                    .and_then(|k| truth.get(&k));
                let to_shadow = d.port == Port::Uplink
                    && unwrapped.is_some_and(|(vni, _)| vni == Some(shadow.vni));
                if !to_shadow {
                    if d.copy == 0
                        && let Some((attack, at_ns)) = truth_of
                    {
                        let blocked = report.first_block_ns().is_some_and(|b| *at_ns >= b);
                        let c = class_entry(&mut report.classes, attack.as_ref());
                        c.delivered += 1;
                        c.delivered_after_block += u64::from(blocked);
                        c.delivered_after_detected +=
                            u64::from(c.detected_ns.is_some_and(|t| *at_ns >= t));
                    }
                    continue;
                }
                report.shadow_frames += 1;
                let at_shadow_ns = end_ns + req.fabric_ns;
                let attack = truth_of.and_then(|(a, _)| a.as_ref());
                let t = Instant::now();
                let Ok(seen) = tap.observe_encapsulated(epoch_ns + at_shadow_ns, bytes) else {
                    continue;
                };
                if seen.duplicate {
                    // The second copy of a frame between two VMs: analysed once, captured once.
                    report.shadow_duplicates += 1;
                    continue;
                }
                if let Some(w) = capture.as_mut()
                    && let Some((_, inner)) = unwrapped
                {
                    // The decoys' answers are part of what the shadow carried: Suricata sees
                    // both directions of an exchange with a honeypot.
                    for f in std::iter::once(inner).chain(seen.replies.iter().map(Vec::as_slice)) {
                        w.write(epoch_ns + at_shadow_ns, f)
                            .map_err(|e| ControlError::Conflict(format!("shadow capture: {e}")))?;
                    }
                }
                report.honeypot_replies += seen.replies.len() as u64;
                let mut raised = false;
                for (decoy, i) in tap.take_interactions() {
                    report.honeypot_interactions += 1;
                    let Some((sid, ..)) = honeypot_signature(&i.kind) else {
                        continue;
                    };
                    let last = decoy_alerted
                        .entry((i.peer, decoy, sid))
                        .or_insert(u64::MAX);
                    if *last != u64::MAX && at_shadow_ns < *last + HONEYPOT_ALERT_INTERVAL_NS {
                        continue;
                    }
                    *last = at_shadow_ns;
                    let name = decoy_names.get(&decoy).map_or("honeypot", String::as_str);
                    if let Some(e) = alert_from_honeypot(&i, name, decoy, &ctx)
                        .map_err(|e| ControlError::Conflict(format!("finding: {e}")))?
                    {
                        report.honeypot_alerts += 1;
                        let c = class_entry(&mut report.classes, attack);
                        c.detected_ns.get_or_insert(at_shadow_ns);
                        findings.push((at_shadow_ns, e.to_value()));
                        raised = true;
                    }
                }
                let tap_ns = t.elapsed().as_nanos() as u64;
                if let Some(v) = seen.verdict {
                    let c = class_entry(&mut report.classes, attack);
                    match v {
                        GateVerdict::Release => {
                            c.released += 1;
                            c.released_after_detected +=
                                u64::from(c.detected_ns.is_some_and(|t| t <= at_shadow_ns));
                            let n = release_frame(
                                bytes,
                                &ParseConfig::default(),
                                network.vni,
                                &mut release_buf,
                            )
                            .map_err(|e| ControlError::Conflict(format!("release: {e}")))?;
                            due_seq += 1;
                            due.push(Reverse((
                                at_shadow_ns + tap_ns + req.fabric_ns,
                                due_seq,
                                Due::Release(release_buf[..n].to_vec()),
                            )));
                        }
                        GateVerdict::BlockedSource | GateVerdict::Detected { .. } => {
                            c.withheld += 1;
                        }
                    }
                }
                for a in &seen.alerts {
                    report.alerts += 1;
                    let c = class_entry(&mut report.classes, attack);
                    c.detected_ns.get_or_insert(at_shadow_ns);
                    let e = alert_from_detector(a, &ctx, None)
                        .map_err(|e| ControlError::Conflict(format!("finding: {e}")))?;
                    findings.push((at_shadow_ns, e.to_value()));
                    raised = true;
                }
                if raised {
                    let delay = req.control_delay_ns.unwrap_or(0);
                    due_seq += 1;
                    due.push(Reverse((
                        at_shadow_ns + tap_ns + delay,
                        due_seq,
                        Due::Ingest(at_shadow_ns),
                    )));
                }
            }
        }
        if let Some(w) = capture {
            w.finish()
                .map_err(|e| ControlError::Conflict(format!("shadow capture: {e}")))?;
        }
        report.shadow_lost = tap.stats().lost;
        for c in report.classes.values_mut() {
            c.delivered_after_first = c.delivered.saturating_sub(1);
        }
        report.wall_ns = wall0.elapsed().as_nanos() as u64;
        Ok(report)
    }

    /// The frames of `scenario` that cross this NIC, on the port each arrives on:
    /// frames from a VM of the shadow's network on this NIC enter on its VF (source MAC set
    /// to the VM's), frames to one enter on the uplink, VXLAN-encapsulated from the
    /// substrate host of the network's first remote node (or 192.0.2.1), destination MAC
    /// set to the VM's.
    pub fn generated_frames(
        &self,
        caller: &Caller,
        shadow: &str,
        scenario: &Scenario,
    ) -> Result<Vec<LoopFrame>, ControlError> {
        let tenant = caller.tenant()?.to_string();
        let world = World::load(&self.store)?;
        let (_, _, network) =
            world
                .shadow(&tenant, shadow)
                .cloned()
                .ok_or_else(|| ControlError::NotFound {
                    kind: "shadow",
                    name: shadow.to_string(),
                })?;
        let local = self
            .port
            .local_ipv4
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut vms: HashMap<IpAddr, (Port, [u8; 6])> = HashMap::new();
        let mut edge = None;
        for n in &network.nodes {
            let (Ok(ip), Ok(mac)) = (
                n.ip.parse::<IpAddr>(),
                n.mac.parse::<shadownet_hw::layout::Mac>(),
            ) else {
                continue;
            };
            if n.host == local {
                if let Some(p) = self.port_named(&format!("{}/{}", network.name, n.name)) {
                    vms.insert(ip, (p, mac.0));
                }
            } else if edge.is_none() {
                edge = n.host.parse::<std::net::Ipv4Addr>().ok();
            }
        }
        if vms.is_empty() {
            return Err(ControlError::Conflict(format!(
                "network '{}' has no VM on this NIC: nothing of the traffic would cross it",
                network.name
            )));
        }
        let edge = edge.unwrap_or(std::net::Ipv4Addr::new(192, 0, 2, 1));
        let nic_ip = self.port.local_ipv4.ok_or_else(|| {
            ControlError::Conflict("this NIC has no substrate IPv4 address".into())
        })?;
        let frames =
            generate(scenario).map_err(|e| ControlError::field("scenario", e.to_string()))?;
        let mut fed = Vec::new();
        for f in frames {
            let Some((src, dst)) = ipv4_pair(&f.frame) else {
                continue;
            };
            let attack = match f.label {
                Label::Benign => None,
                Label::Attack(c) => Some(c.name().to_string()),
            };
            let mut frame = f.frame;
            let (port, frame) = if let Some((port, mac)) = vms.get(&src) {
                frame[6..12].copy_from_slice(mac);
                (*port, frame)
            } else if let Some((_, mac)) = vms.get(&dst) {
                frame[0..6].copy_from_slice(mac);
                (Port::Uplink, vxlan_from(edge, nic_ip, network.vni, &frame)?)
            } else {
                continue;
            };
            if fed.len() == MAX_LOOP_FRAMES {
                return Err(ControlError::field(
                    "scenario",
                    format!("more than {MAX_LOOP_FRAMES} frames cross this NIC; shorten it"),
                ));
            }
            fed.push(LoopFrame {
                port,
                at_ns: f.ts_ns,
                frame,
                attack,
            });
        }
        Ok(fed)
    }

    /// Generates `req.scenario` and runs the frames that cross this NIC
    /// ([`Controller::generated_frames`]) through the loop.
    ///
    /// With a supervised Suricata the shadow's traffic is then analysed offline and its
    /// alerts ingested after the run ([`LoopReport::suricata`]).
    pub fn run_generated_loop(
        &mut self,
        caller: &Caller,
        shadow: &str,
        req: GeneratedLoop,
    ) -> Result<LoopReport, ControlError> {
        let tenant = caller.tenant()?.to_string();
        if req.labels.is_some() && req.pcap.is_none() {
            return Err(ControlError::field(
                "labels",
                "only with 'pcap' (a stored capture's labels are stored with it)",
            ));
        }
        let source = match (req.scenario, req.artefact, req.pcap) {
            (Some(s), None, None) => Ok(s),
            (None, Some(a), None) => Err((CaptureSource::Artefact(a), LabelsSource::Stored)),
            (None, None, Some(p)) => Err((
                CaptureSource::Path(p.into()),
                req.labels
                    .map_or(LabelsSource::None, |l| LabelsSource::Path(l.into())),
            )),
            _ => {
                return Err(ControlError::field(
                    "body",
                    "name exactly one of 'scenario', 'artefact' and 'pcap'",
                ));
            }
        };
        let fed = match source {
            Ok(scenario) => self.generated_frames(caller, shadow, &scenario)?,
            Err((capture, labels)) => {
                let (frames, read) = self.captured_frames(caller, shadow, capture, labels)?;
                if frames.is_empty() {
                    return Err(ControlError::field(
                        "capture",
                        format!(
                            "none of its {read} frames would cross this NIC (no IP frame from or to a VM of the shadow's network on it)"
                        ),
                    ));
                }
                frames
            }
        };
        let mut detector = DetectorConfig {
            baseline_s: req.baseline_s.unwrap_or(20.0),
            ..DetectorConfig::default()
        };
        if let Some(t) = req.alert_threshold {
            detector.alert_threshold = t;
        }
        let gate_score = detector.alert_threshold;
        let run_dir = self.suricata_run_dir()?;
        let mut report = self.run_shadow_loop(
            caller,
            LoopRequest {
                shadow: shadow.to_string(),
                frames: fed,
                detector,
                gate_score,
                fabric_ns: (req.fabric_us.unwrap_or(5.0).max(0.0) * 1000.0) as u64,
                control_delay_ns: req.control_delay_ms.map(|m| (m.max(0.0) * 1e6) as u64),
                honeypots: vec![],
                shadow_capture: run_dir.as_ref().map(|d| d.join("shadow.pcap")),
            },
        )?;
        if let Some(dir) = run_dir {
            report.suricata = Some(self.suricata_after_loop(&tenant, shadow, &dir)?);
        }
        Ok(report)
    }

    /// A fresh directory for the supervised Suricata's analysis of a loop run (the previous
    /// run's is removed: captures are large); `None` without a running Suricata.
    fn suricata_run_dir(&mut self) -> Result<Option<PathBuf>, ControlError> {
        let Some(node) = self.suricata.as_mut() else {
            return Ok(None);
        };
        if !node.retry_start_if_due() {
            return Ok(None);
        }
        let base = node.options().dir.join("loops");
        if self.suricata_runs > 0 {
            let old = base.join(format!("run-{}", self.suricata_runs));
            if let Err(e) = std::fs::remove_dir_all(&old)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %old.display(), error = %e, "removing a previous suricata run");
            }
        }
        self.suricata_runs += 1;
        let dir = base.join(format!("run-{}", self.suricata_runs));
        std::fs::create_dir_all(&dir)
            .map_err(|e| ControlError::Conflict(format!("{}: {e}", dir.display())))?;
        Ok(Some(dir))
    }

    /// Has the supervised Suricata analyse the run's shadow capture in `dir` and ingests its
    /// alerts as findings of the shadow. An analysis failure is reported, not returned: the
    /// run's own results stand.
    fn suricata_after_loop(
        &mut self,
        tenant: &str,
        shadow: &str,
        dir: &std::path::Path,
    ) -> Result<SuricataLoop, ControlError> {
        let capture = dir.join("shadow.pcap");
        let mut out = SuricataLoop {
            capture: capture.display().to_string(),
            ..SuricataLoop::default()
        };
        let Some(node) = self.suricata.as_mut() else {
            out.error = Some("the daemon does not supervise Suricata".into());
            return Ok(out);
        };
        let t = Instant::now();
        let events = match node.analyse(&capture, &dir.join("eve")) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(shadow, error = %e, "suricata could not analyse the loop's capture");
                out.error = Some(e.to_string());
                return Ok(out);
            }
        };
        out.analysis_ns = t.elapsed().as_nanos() as u64;
        out.events = events.len() as u64;
        let alerts: Vec<Value> = events
            .into_iter()
            .filter(|e| e.get("event_type").and_then(Value::as_str) == Some("alert"))
            .collect();
        out.alerts = alerts.len() as u64;
        for a in &alerts {
            if let Some(sid) = a.pointer("/alert/signature_id").and_then(Value::as_u64) {
                *out.alerts_by_sid.entry(sid).or_default() += 1;
            }
        }
        // An alert without a severity is kept: the ingest names what is wrong with it.
        let (alerts, low): (Vec<Value>, Vec<Value>) = alerts.into_iter().partition(|a| {
            a.pointer("/alert/severity")
                .and_then(Value::as_u64)
                .is_none_or(|s| s <= SURICATA_MAX_SEVERITY)
        });
        out.low_severity = low.len() as u64;
        let t = Instant::now();
        let mut incidents = std::collections::BTreeSet::new();
        let mut alerts = alerts.into_iter().peekable();
        while alerts.peek().is_some() {
            let batch: Vec<Value> = alerts.by_ref().take(SURICATA_BATCH).collect();
            let r = match self.ingest_findings(
                ShadowRef::Name {
                    tenant: tenant.to_string(),
                    name: shadow.to_string(),
                },
                batch,
                "suricata",
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(shadow, error = %e, "ingesting suricata's alerts");
                    out.error = Some(format!("ingesting suricata's alerts: {e}"));
                    break;
                }
            };
            out.accepted += r.accepted;
            out.correlated += r.correlated;
            incidents.extend(r.incidents);
            out.mitigations.extend(r.mitigations);
        }
        out.incidents = incidents.into_iter().collect();
        out.ingest_ns = t.elapsed().as_nanos() as u64;
        Ok(out)
    }

    /// The simulated NIC's model; the loop needs one.
    fn sim_model(&self) -> Result<std::cell::RefMut<'_, shadownet_sim::NicModel>, ControlError> {
        self.nic
            .device()
            .model()
            .ok_or_else(|| ControlError::Conflict("the loop runs on the simulated NIC only".into()))
    }

    fn fw_cycles(&self) -> u64 {
        self.nic
            .device()
            .model()
            .map(|m| m.firmware_cycles())
            .unwrap_or(0)
    }
}

/// The IPv4 source and destination of an untagged Ethernet frame.
fn ipv4_pair(frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..34)?;
    Some((
        IpAddr::from([ip[12], ip[13], ip[14], ip[15]]),
        IpAddr::from([ip[16], ip[17], ip[18], ip[19]]),
    ))
}

/// `inner` in VXLAN from the substrate host `src` to `dst`, as a remote host sends it.
fn vxlan_from(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    vni: u32,
    inner: &[u8],
) -> Result<Vec<u8>, ControlError> {
    let params = EncapParams {
        src_mac: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
        dst_mac: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
        src_ip: IpAddr::V4(src),
        dst_ip: IpAddr::V4(dst),
        udp_src_port: 50_000,
        udp_dst_port: ParseConfig::default().vxlan_port,
        ttl: 64,
        tunnel: TunnelHeader::Vxlan { vni },
    };
    let mut out = vec![0u8; inner.len() + MAX_ENCAP_OVERHEAD];
    let n = emit_encap(&params, inner, &mut out)
        .map_err(|e| ControlError::field("scenario", format!("encapsulating a frame: {e}")))?;
    out.truncate(n);
    Ok(out)
}

/// The source addresses a report's block rules name.
pub fn blocked_sources(report: &LoopReport) -> Vec<IpAddr> {
    report
        .ingests
        .iter()
        .flat_map(|i| i.report.activations())
        .filter(|a| !a.rule.is_rate_limit())
        .filter_map(|a| a.rule.src.split('/').next()?.parse().ok())
        .collect()
}
