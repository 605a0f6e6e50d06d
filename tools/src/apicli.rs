//! `shadowctl` commands that talk to the daemon's API: tenants, networks, nodes, shadows,
//! automation rules, alerts, findings, incidents, mitigations, versions and diffs, the audit
//! log and the NIC. Every command
//! prints a readable table or, with `--json`, the API's JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::Client;

/// Where the daemon is and who calls it.
#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    /// API base URL.
    #[arg(
        long,
        global = true,
        env = "SHADOWNET_API",
        default_value = "http://127.0.0.1:7878"
    )]
    pub api: String,
    /// Bearer token (a tenant's, or the admin token).
    #[arg(long, global = true, env = "SHADOWNET_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (e.g. shadownet-data/admin.token).
    #[arg(long, global = true, env = "SHADOWNET_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// With the admin token: act on this tenant's objects.
    #[arg(long, global = true, env = "SHADOWNET_TENANT")]
    pub tenant: Option<String>,
    /// Print JSON instead of text and tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ApiArgs {
    /// The client these arguments describe.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the token file {}", p.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(Client::new(&self.api, token, self.tenant.clone()))
    }
}

/// Tenants (admin).
#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant; prints its first token.
    Create {
        /// Name.
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Limits.
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List tenants with their usage.
    List,
    /// Show a tenant, its limits and usage.
    Show {
        /// Name.
        name: String,
    },
    /// Change a tenant's limits (unset ones keep their value).
    SetLimits {
        /// Name.
        name: String,
        /// Limits.
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Issue another token.
    Token {
        /// Name.
        name: String,
    },
}

/// Resource limits on the command line.
#[derive(Args, Debug, Default)]
pub struct LimitArgs {
    /// Shadows alive at once.
    #[arg(long)]
    pub max_shadows: Option<u32>,
    /// Mirrored Mbit/s over all shadows.
    #[arg(long)]
    pub max_mirror_mbps: Option<u32>,
    /// Mirror rules over all shadows.
    #[arg(long)]
    pub max_mirror_rules: Option<u32>,
    /// NIC table entries.
    #[arg(long)]
    pub max_table_entries: Option<u32>,
    /// Longest shadow lifetime (e.g. 1h, 7d).
    #[arg(long, value_parser = parse_duration)]
    pub max_shadow_lifetime: Option<u64>,
    /// Bytes in the store.
    #[arg(long)]
    pub max_stored_bytes: Option<u64>,
}

impl LimitArgs {
    fn apply(&self, limits: &mut Value) {
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                limits[k] = v;
            }
        };
        set("max_shadows", self.max_shadows.map(Value::from));
        set("max_mirror_mbps", self.max_mirror_mbps.map(Value::from));
        set("max_mirror_rules", self.max_mirror_rules.map(Value::from));
        set("max_table_entries", self.max_table_entries.map(Value::from));
        set(
            "max_shadow_lifetime_s",
            self.max_shadow_lifetime.map(Value::from),
        );
        set("max_stored_bytes", self.max_stored_bytes.map(Value::from));
    }
}

/// Production networks.
#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network from a JSON or TOML file.
    Create {
        /// The network document.
        #[arg(long)]
        file: PathBuf,
        /// Idempotency key: a retry with the same key does not create twice.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Replace a network with the document in a file (a new version).
    Apply {
        /// The network document.
        #[arg(long)]
        file: PathBuf,
        /// Refuse if the current version is not this one.
        #[arg(long)]
        if_version: Option<u64>,
    },
    /// List networks.
    List,
    /// Show a network (the current version, or --version N).
    Show {
        /// Name.
        name: String,
        /// Version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Delete a network.
    Delete {
        /// Name.
        name: String,
    },
    /// A network's versions.
    History {
        /// Name.
        name: String,
    },
    /// What changed between two versions (to defaults to the current one).
    Diff {
        /// Name.
        name: String,
        /// From version.
        #[arg(long)]
        from: u64,
        /// To version.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Re-apply an earlier version.
    Rollback {
        /// Name.
        name: String,
        /// The version.
        #[arg(long)]
        to: u64,
    },
}

/// Nodes of a network.
#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Add a node.
    Add {
        /// The network.
        network: String,
        /// Node name.
        #[arg(long)]
        name: String,
        /// Overlay address.
        #[arg(long)]
        ip: String,
        /// Overlay MAC.
        #[arg(long)]
        mac: String,
        /// Substrate address of its host.
        #[arg(long)]
        host: String,
        /// Substrate MAC of its host.
        #[arg(long)]
        host_mac: String,
        /// Subnet.
        #[arg(long)]
        subnet: Option<String>,
        /// Security groups (repeat).
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
        /// Image.
        #[arg(long, default_value = "")]
        image: String,
        /// Size.
        #[arg(long, default_value = "")]
        size: String,
    },
    /// Remove a node.
    Remove {
        /// The network.
        network: String,
        /// Node name.
        node: String,
    },
}

/// Shadows.
#[derive(Subcommand, Debug)]
pub enum ShadowCmd {
    /// Create a shadow of a network: from a spec file, or from options.
    Create {
        /// A ShadowSpec document (JSON or TOML); options below override its fields.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The production network.
        #[arg(long)]
        network: Option<String>,
        /// Name (generated when absent).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime (e.g. 30m, 2h).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<u64>,
        /// mirror or redirect.
        #[arg(long)]
        mode: Option<String>,
        /// vxlan or geneve.
        #[arg(long)]
        encap: Option<String>,
        /// Collector: IP,MAC.
        #[arg(long)]
        collector: Option<String>,
        /// Mirror bandwidth cap, Mbit/s.
        #[arg(long)]
        mbps: Option<u32>,
        /// Mirror every packet of every node in both directions (a one-rule policy).
        #[arg(long)]
        mirror_all: bool,
        /// Idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List shadows.
    List,
    /// Show a shadow.
    Show {
        /// Name.
        name: String,
        /// Version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Change a shadow's analysis capacity.
    Capacity {
        /// Name.
        name: String,
        /// Mirror bandwidth, Mbit/s (0: uncapped).
        #[arg(long)]
        mbps: u32,
        /// Policer burst, bytes.
        #[arg(long, default_value_t = 262_144)]
        burst: u32,
        /// Copy one packet in N.
        #[arg(long, default_value_t = 1)]
        sample: u32,
    },
    /// Run generated traffic through the simulated production NIC with the shadow's
    /// analysis in the loop (the built-in detector's findings are ingested, correlated and
    /// acted on by the mitigation policy while the traffic runs); prints per attack class
    /// what reached production.
    Loop {
        /// The shadow.
        name: String,
        /// The traffic, generated.
        #[command(flatten)]
        traffic: crate::traffic::ScenarioArgs,
        /// The traffic, recorded: a capture stored with the shadow (`shadow capture`),
        /// replayed at its own timing instead of generated traffic.
        #[arg(long, conflicts_with_all = ["scenario", "preset", "attacks"])]
        artefact: Option<String>,
        /// The traffic, recorded: a capture file on the daemon's host (admin token only).
        #[arg(long, conflicts_with_all = ["scenario", "preset", "attacks", "artefact"])]
        pcap: Option<String>,
        /// With `--pcap`: its ground truth, a labels.csv on the daemon's host.
        #[arg(long, requires = "pcap")]
        labels: Option<String>,
        /// Seconds the detector learns before it scores.
        #[arg(long, default_value_t = 20.0)]
        baseline: f64,
        /// NIC time findings wait before they are ingested, ms.
        #[arg(long)]
        control_delay_ms: Option<f64>,
    },
    /// Store a recording (pcap or pcapng) with a shadow, replacing one of the same name: what
    /// `shadow loop --artefact` replays and `mitigation trial --artefact` tries rules on.
    Capture {
        /// The shadow.
        name: String,
        /// The recording's name.
        capture: String,
        /// The capture file.
        file: PathBuf,
        /// Its ground truth (`labels.csv` of `traffic gen`, one row per frame): the loop
        /// then reports the replay per attack class.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Replace a shadow's mirror policy with the one in a file.
    Policy {
        /// Name.
        name: String,
        /// A MirrorPolicy document.
        #[arg(long)]
        file: PathBuf,
    },
    /// Mark a shadow complete (it is torn down).
    Complete {
        /// Name.
        name: String,
    },
    /// Delete a shadow now.
    Delete {
        /// Name.
        name: String,
    },
    /// A shadow's versions.
    History {
        /// Name.
        name: String,
    },
    /// What changed between two versions.
    Diff {
        /// Name.
        name: String,
        /// From version.
        #[arg(long)]
        from: u64,
        /// To version.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Re-apply an earlier version's policy and capacity.
    Rollback {
        /// Name.
        name: String,
        /// The version.
        #[arg(long)]
        to: u64,
    },
}

/// Automation rules.
#[derive(Subcommand, Debug)]
pub enum AutomationCmd {
    /// Store a rule from a file.
    Put {
        /// An Automation document.
        #[arg(long)]
        file: PathBuf,
    },
    /// List rules.
    List,
    /// Delete a rule.
    Delete {
        /// Name.
        name: String,
    },
}

/// The NIC (admin).
#[derive(Subcommand, Debug)]
pub enum NicCmd {
    /// Identity and table fill.
    Status,
    /// Entries that differ from the desired state.
    Drift,
    /// Reprogram from the store.
    Resync,
    /// Reset the NIC and rebuild it.
    Reset,
    /// Feed a capture into a port of the simulated NIC.
    Inject {
        /// The capture.
        file: PathBuf,
        /// Port: uplink, pf, vfN or a local node's name.
        #[arg(long, default_value = "uplink")]
        port: String,
        /// Back to back at line rate instead of the capture's timing.
        #[arg(long)]
        line_rate: bool,
    },
}

/// The daemon's analysis nodes.
#[derive(Subcommand, Debug)]
pub enum AnalysisCmd {
    /// The supervised Suricata: running or why not, version, restarts, last exit, counters.
    Suricata,
}

/// Findings from shadows' analysis nodes.
#[derive(Subcommand, Debug)]
pub enum FindingCmd {
    /// List findings with the production VM each concerns.
    List {
        /// Only this shadow's.
        #[arg(long)]
        shadow: Option<String>,
        /// Only from this event time on (unix milliseconds or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Send Suricata-EVE alerts (a JSON or NDJSON file, e.g. eve.json) as a shadow's findings.
    Send {
        /// The shadow they come from.
        #[arg(long)]
        shadow: String,
        /// The file.
        file: PathBuf,
    },
}

/// Incidents: findings grouped by source, target or campaign.
#[derive(Subcommand, Debug)]
pub enum IncidentCmd {
    /// List incidents.
    List,
    /// Show an incident and its findings.
    Show {
        /// Id.
        id: u64,
    },
    /// Close an incident.
    Close {
        /// Id.
        id: u64,
    },
}

/// Mitigation: the policy and block rules in the production NIC.
#[derive(Subcommand, Debug)]
pub enum MitigationCmd {
    /// List block rules in every state.
    List,
    /// Show the mitigation policy, or replace it from a JSON/TOML file.
    Policy {
        /// A MitigationPolicy document to store.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Propose a block rule (or, with --rate-limit, a rate limit) by hand.
    Propose {
        /// Source address or prefix to block (`0.0.0.0/0` for every source: rate limits only).
        #[arg(long)]
        src: String,
        /// Only traffic toward this address or prefix of the network (required with
        /// --rate-limit).
        #[arg(long)]
        dst: Option<String>,
        /// Only TCP connection attempts (SYN without ACK); needs --protocol tcp.
        #[arg(long)]
        connections_only: bool,
        /// Police instead of block: PPS or PPS/BURST packets let through.
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<(u32, Option<u32>)>,
        /// The production network (taken from --shadow or --incident when absent).
        #[arg(long)]
        network: Option<String>,
        /// The shadow whose tables and findings a trial uses.
        #[arg(long)]
        shadow: Option<String>,
        /// The incident it answers.
        #[arg(long)]
        incident: Option<u64>,
        /// Only this protocol (tcp, udp, icmp, a number).
        #[arg(long)]
        protocol: Option<String>,
        /// Only these destination ports (tcp/udp).
        #[arg(long)]
        dst_ports: Option<String>,
        /// Lifetime once committed (e.g. 30m, 1h); the policy's when absent.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<u64>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Replay a capture through a scratch simulated NIC with the rule: what would it have
    /// blocked (production is not touched).
    Trial {
        /// The mitigation.
        id: String,
        /// A capture to upload.
        #[arg(long, conflicts_with = "artefact")]
        pcap: Option<PathBuf>,
        /// A capture artefact of the mitigation's shadow.
        #[arg(long)]
        artefact: Option<String>,
    },
    /// Commit a proposed rule into the production NIC's ACL.
    Commit {
        /// The mitigation.
        id: String,
    },
    /// Withdraw a rule (removed from the NIC when active).
    Withdraw {
        /// The mitigation.
        id: String,
    },
}

/// An API command.
#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Tenants and their limits.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Production networks and their versions.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Nodes of a network.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Shadows.
    #[command(subcommand)]
    Shadow(ShadowCmd),
    /// Automation rules that create shadows on alerts.
    #[command(subcommand)]
    Automation(AutomationCmd),
    /// Report an alert about a network.
    Alert {
        /// The network.
        #[arg(long)]
        network: String,
        /// Severity 1 (high) to 4.
        #[arg(long)]
        severity: u8,
        /// Signature.
        #[arg(long)]
        signature: String,
    },
    /// The audit log.
    Audit {
        /// Entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The NIC.
    #[command(subcommand)]
    Nic(NicCmd),
    /// The daemon's analysis nodes (Suricata).
    #[command(subcommand)]
    Analysis(AnalysisCmd),
    /// Findings from shadows, correlated to production.
    #[command(subcommand)]
    Finding(FindingCmd),
    /// Incidents.
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// Mitigation policy and block rules.
    #[command(subcommand)]
    Mitigation(MitigationCmd),
}

/// A rate limit `PPS` or `PPS/BURST` (packets a second; burst in packets).
pub fn parse_rate_limit(s: &str) -> Result<(u32, Option<u32>), String> {
    let num = |x: &str, what: &str| {
        x.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{x}' in '{s}' is not a number of {what}"))
    };
    match s.split_once('/') {
        Some((pps, burst)) => Ok((num(pps, "packets a second")?, Some(num(burst, "packets")?))),
        None => Ok((num(s, "packets a second")?, None)),
    }
}

/// Parses `90`, `90s`, `30m`, `2h`, `7d` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 90s, 30m, 2h, 7d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': unit '{unit}' is not s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// Reads a JSON or TOML document (by extension).
pub fn read_doc(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let v: toml::Value =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(serde_json::to_value(v)?)
    } else {
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), e.line()))
    }
}

/// `GET /v1/analysis/suricata` for people: one line of state, then what it has done.
fn suricata_text(v: &Value) -> String {
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let mut out = if v["enabled"] != true {
        format!("suricata: not supervised ({})\n", s(v, "/error"))
    } else if v["running"] == true {
        format!(
            "suricata: running, pid {}, version {}, up {:.1} s\n",
            s(v, "/pid"),
            s(v, "/version"),
            n("/uptime_ms") as f64 / 1000.0
        )
    } else {
        format!("suricata: not running ({})\n", s(v, "/error"))
    };
    if v["enabled"] != true {
        return out;
    }
    out.push_str(&format!(
        "binary {}, directory {}\nstarts {}, restarts {}",
        s(v, "/binary"),
        s(v, "/dir"),
        n("/starts"),
        n("/restarts")
    ));
    if let Some(x) = v.get("last_exit").filter(|x| !x.is_null()) {
        let how = match (x["code"].as_i64(), x["signal"].as_i64()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown".into(),
        };
        out.push_str(&format!(
            "; last exit: {how} after {:.1} s{}",
            x["ran_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            if x["requested"] == true {
                " (asked to stop)"
            } else {
                ""
            }
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "analyses {}, packets {}, alerts {}, drops {}, EVE events read {} ({} alerts)\n",
        n("/analyses"),
        n("/packets_total"),
        n("/alerts_total"),
        n("/drops_total"),
        n("/eve_events"),
        n("/eve_alerts")
    ));
    match v.get("counters").filter(|c| !c.is_null()) {
        Some(c) => out.push_str(&format!(
            "counters ({}): decoded {} packets, {} invalid, {} alerts, {} flows\n",
            s(v, "/counters_source"),
            c["decoder_pkts"],
            c["decoder_invalid"],
            c["alerts"],
            c["flows_total"]
        )),
        None if !v["counters_error"].is_null() => {
            out.push_str(&format!("counters: {}\n", s(v, "/counters_error")));
        }
        None => {}
    }
    out
}

/// A loop report: one row per traffic class, then the block rules made.
fn loop_table(v: &Value) -> String {
    let ms = |x: &Value| {
        x.as_u64()
            .map(|n| format!("{:.2}", n as f64 / 1e6))
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = Vec::new();
    if let Some(classes) = v["classes"].as_object() {
        for (name, c) in classes {
            let first = c["first_ns"].as_u64().unwrap_or(0);
            let detected = c["detected_ns"]
                .as_u64()
                .map(|t| Value::from(t.saturating_sub(first)));
            rows.push(vec![
                name.clone(),
                c["fed"].to_string(),
                c["delivered"].to_string(),
                c["delivered_after_detected"].to_string(),
                c["delivered_after_block"].to_string(),
                c["withheld"].to_string(),
                detected.as_ref().map(ms).unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    let mut out = table(
        &[
            "CLASS",
            "FED",
            "DELIVERED",
            "AFTER DETECTION",
            "AFTER BLOCK",
            "WITHHELD",
            "DETECTED (MS)",
        ],
        &rows,
    );
    for i in v["ingests"].as_array().into_iter().flatten() {
        for m in i["report"]["mitigations"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{} {} {} at {} ms (raised {} ms, host work {} ms)\n",
                m["action"].as_str().unwrap_or(""),
                m["mitigation"].as_str().unwrap_or("-"),
                m["source"].as_str().unwrap_or(""),
                ms(&i["active_ns"]),
                ms(&i["raised_ns"]),
                ms(&i["wall_ns"]),
            ));
        }
    }
    out
}

/// A plain text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(x) => x.to_string(),
    }
}

fn when(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr).and_then(Value::as_i64) {
        None => "-".into(),
        Some(ms) => {
            let secs = ms / 1000;
            let (d, r) = (secs / 86_400, secs % 86_400);
            let (y, m, dd) = civil(d);
            format!(
                "{y:04}-{m:02}-{dd:02} {:02}:{:02}:{:02}",
                r / 3600,
                r % 3600 / 60,
                r % 60
            )
        }
    }
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Turns an answer into text.
type Render = Box<dyn Fn(&Value) -> String>;

/// Runs an API command; returns what to print.
pub fn run(cmd: ApiCommand, args: &ApiArgs) -> anyhow::Result<String> {
    let c = args.client()?;
    let (value, text): (Value, Render) = match cmd {
        ApiCommand::Tenant(t) => match t {
            TenantCmd::Create {
                name,
                description,
                limits,
            } => {
                let mut l = json!({});
                limits.apply(&mut l);
                let v = c.send(
                    "POST",
                    "/v1/tenants",
                    &json!({"name": name, "description": description, "limits": l}),
                    &[],
                )?;
                (
                    v,
                    Box::new(|v| {
                        format!(
                            "tenant {} created\ntoken {}\n",
                            s(v, "/tenant/object/name"),
                            s(v, "/token")
                        )
                    }),
                )
            }
            TenantCmd::List => (c.get("/v1/tenants")?, Box::new(tenant_table)),
            TenantCmd::Show { name } => {
                let v = c.get(&format!("/v1/tenants/{name}"))?;
                (
                    v.clone(),
                    Box::new(|v| tenant_table(&Value::Array(vec![v.clone()]))),
                )
            }
            TenantCmd::SetLimits { name, limits } => {
                let cur = c.get(&format!("/v1/tenants/{name}"))?;
                let mut t = cur["tenant"].clone();
                limits.apply(&mut t["limits"]);
                let v = c.send("PUT", &format!("/v1/tenants/{name}"), &t, &[])?;
                (
                    v,
                    Box::new(|v| {
                        format!(
                            "tenant {} is at version {}\n",
                            s(v, "/object/name"),
                            s(v, "/version")
                        )
                    }),
                )
            }
            TenantCmd::Token { name } => {
                let v = c.send(
                    "POST",
                    &format!("/v1/tenants/{name}/tokens"),
                    &json!({}),
                    &[],
                )?;
                (v, Box::new(|v| format!("{}\n", s(v, "/token"))))
            }
        },
        ApiCommand::Network(n) => match n {
            NetworkCmd::Create {
                file,
                idempotency_key,
            } => {
                let doc = read_doc(&file)?;
                let h: Vec<(&str, String)> = idempotency_key
                    .map(|k| vec![("Idempotency-Key", k)])
                    .unwrap_or_default();
                let v = c.send("POST", "/v1/networks", &doc, &h)?;
                (v, Box::new(version_line("network")))
            }
            NetworkCmd::Apply { file, if_version } => {
                let doc = read_doc(&file)?;
                let name = doc
                    .get("name")
                    .and_then(Value::as_str)
                    .with_context(|| format!("{}: the network has no name", file.display()))?
                    .to_string();
                let h: Vec<(&str, String)> = if_version
                    .map(|v| vec![("If-Match", format!("\"{v}\""))])
                    .unwrap_or_default();
                let v = c.send("PUT", &format!("/v1/networks/{name}"), &doc, &h)?;
                (v, Box::new(version_line("network")))
            }
            NetworkCmd::List => (
                c.get("/v1/networks")?,
                Box::new(|v| {
                    table(
                        &[
                            "name", "version", "vni", "prefixes", "nodes", "groups", "updated",
                        ],
                        &rows(v)
                            .iter()
                            .map(|n| {
                                vec![
                                    s(n, "/object/name"),
                                    s(n, "/version"),
                                    s(n, "/object/vni"),
                                    n.pointer("/object/prefixes")
                                        .and_then(Value::as_array)
                                        .map(|a| {
                                            a.iter()
                                                .filter_map(Value::as_str)
                                                .collect::<Vec<_>>()
                                                .join(",")
                                        })
                                        .unwrap_or_default(),
                                    count(n, "/object/nodes"),
                                    count(n, "/object/security_groups"),
                                    when(n, "/updated_at_ms"),
                                ]
                            })
                            .collect::<Vec<_>>(),
                    )
                }),
            ),
            NetworkCmd::Show { name, version } => {
                let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
                let v = c.get(&format!("/v1/networks/{name}{q}"))?;
                (v, Box::new(network_text))
            }
            NetworkCmd::Delete { name } => {
                let v = c.delete(&format!("/v1/networks/{name}"))?;
                (v, Box::new(move |_| format!("network {name} deleted\n")))
            }
            NetworkCmd::History { name } => (
                c.get(&format!("/v1/networks/{name}/versions"))?,
                Box::new(history_table),
            ),
            NetworkCmd::Diff { name, from, to } => {
                let q = to.map(|t| format!("&to={t}")).unwrap_or_default();
                (
                    c.get(&format!("/v1/networks/{name}/diff?from={from}{q}"))?,
                    Box::new(diff_text),
                )
            }
            NetworkCmd::Rollback { name, to } => {
                let v = c.send(
                    "POST",
                    &format!("/v1/networks/{name}/rollback"),
                    &json!({"version": to}),
                    &[],
                )?;
                (v, Box::new(version_line("network")))
            }
        },
        ApiCommand::Node(n) => match n {
            NodeCmd::Add {
                network,
                name,
                ip,
                mac,
                host,
                host_mac,
                subnet,
                security_groups,
                image,
                size,
            } => {
                let node = json!({"name": name, "ip": ip, "mac": mac, "host": host, "host_mac": host_mac,
                    "subnet": subnet, "security_groups": security_groups,
                    "definition": {"image": image, "size": size}});
                let v = c.send("POST", &format!("/v1/networks/{network}/nodes"), &node, &[])?;
                (v, Box::new(version_line("network")))
            }
            NodeCmd::Remove { network, node } => {
                let v = c.delete(&format!("/v1/networks/{network}/nodes/{node}"))?;
                (v, Box::new(version_line("network")))
            }
        },
        ApiCommand::Shadow(sc) => match sc {
            ShadowCmd::Create {
                file,
                network,
                name,
                ttl,
                mode,
                encap,
                collector,
                mbps,
                mirror_all,
                idempotency_key,
            } => {
                let mut spec = match &file {
                    Some(f) => read_doc(f)?,
                    None => json!({}),
                };
                if let Some(n) = network {
                    spec["network"] = n.into();
                }
                if let Some(n) = name {
                    spec["name"] = n.into();
                }
                if let Some(t) = ttl {
                    spec["ttl_s"] = t.into();
                }
                if let Some(m) = mode {
                    spec["mode"] = m.into();
                }
                if let Some(e) = encap {
                    spec["encap"] = e.into();
                }
                if let Some(col) = collector {
                    let (ip, mac) = col
                        .split_once(',')
                        .context("--collector is IP,MAC (e.g. 10.0.0.50,02:00:00:00:00:50)")?;
                    spec["collector"] = json!({"ip": ip, "mac": mac});
                }
                if let Some(m) = mbps {
                    spec["capacity"]["mbps"] = m.into();
                }
                if mirror_all {
                    spec["policy"] = json!({"rules": [{"direction": "both"}]});
                }
                if spec.get("network").is_none() {
                    bail!("a shadow needs --network (or a spec file naming it)");
                }
                let h: Vec<(&str, String)> = idempotency_key
                    .map(|k| vec![("Idempotency-Key", k)])
                    .unwrap_or_default();
                let v = c.send("POST", "/v1/shadows", &spec, &h)?;
                (v, Box::new(shadow_text))
            }
            ShadowCmd::List => (
                c.get("/v1/shadows")?,
                Box::new(|v| {
                    table(
                        &[
                            "name", "version", "network", "state", "mode", "vni", "session",
                            "rules", "mbps", "expires",
                        ],
                        &rows(v)
                            .iter()
                            .map(|x| {
                                vec![
                                    s(x, "/object/name"),
                                    s(x, "/version"),
                                    format!(
                                        "{}@{}",
                                        s(x, "/object/spec/network"),
                                        s(x, "/object/network_version")
                                    ),
                                    s(x, "/object/state"),
                                    s(x, "/object/spec/mode"),
                                    s(x, "/object/vni"),
                                    s(x, "/object/session"),
                                    count(x, "/object/spec/policy/rules"),
                                    s(x, "/object/spec/capacity/mbps"),
                                    when(x, "/object/expires_at_ms"),
                                ]
                            })
                            .collect::<Vec<_>>(),
                    )
                }),
            ),
            ShadowCmd::Show { name, version } => {
                let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
                (
                    c.get(&format!("/v1/shadows/{name}{q}"))?,
                    Box::new(shadow_text),
                )
            }
            ShadowCmd::Capacity {
                name,
                mbps,
                burst,
                sample,
            } => {
                let v = c.send(
                    "PUT",
                    &format!("/v1/shadows/{name}/capacity"),
                    &json!({"mbps": mbps, "burst_bytes": burst, "sample": sample}),
                    &[],
                )?;
                (v, Box::new(version_line("shadow")))
            }
            ShadowCmd::Loop {
                name,
                traffic,
                artefact,
                pcap,
                labels,
                baseline,
                control_delay_ms,
            } => {
                let mut body = json!({
                    "baseline_s": baseline,
                    "control_delay_ms": control_delay_ms,
                });
                match (artefact, pcap) {
                    (Some(a), _) => body["artefact"] = json!(a),
                    (None, Some(p)) => {
                        body["pcap"] = json!(p);
                        if let Some(l) = labels {
                            body["labels"] = json!(l);
                        }
                    }
                    (None, None) => body["scenario"] = json!(traffic.scenario()?),
                }
                let v = c.send("POST", &format!("/v1/shadows/{name}/loop"), &body, &[])?;
                (v, Box::new(loop_table))
            }
            ShadowCmd::Capture {
                name,
                capture,
                file,
                labels,
            } => {
                let data =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                // Checked before anything is stored: labels that do not describe the capture
                // change nothing.
                let labels = labels.map(|p| check_labels(&p, &file)).transpose()?;
                let mut v = c.put_bytes(
                    &format!("/v1/shadows/{name}/captures/{capture}"),
                    "application/vnd.tcpdump.pcap",
                    &data,
                )?;
                if let Some(l) = labels {
                    v["labels"] = c.put_bytes(
                        &format!("/v1/shadows/{name}/captures/{capture}/labels"),
                        "text/csv",
                        &l,
                    )?;
                }
                (
                    v,
                    Box::new(|v| {
                        let mut out = format!(
                            "capture {} stored with shadow {} ({} bytes, {})\n",
                            s(v, "/name"),
                            s(v, "/shadow"),
                            s(v, "/bytes"),
                            s(v, "/format")
                        );
                        if let Some(per) = v["labels"]["per_label"].as_object() {
                            let counts: Vec<String> =
                                per.iter().map(|(k, n)| format!("{k} {n}")).collect();
                            out += &format!(
                                "labels: {} frames ({})\n",
                                s(v, "/labels/frames"),
                                counts.join(", ")
                            );
                        }
                        out
                    }),
                )
            }
            ShadowCmd::Policy { name, file } => {
                let doc = read_doc(&file)?;
                let v = c.send("PUT", &format!("/v1/shadows/{name}/policy"), &doc, &[])?;
                (v, Box::new(version_line("shadow")))
            }
            ShadowCmd::Complete { name } => (
                c.send(
                    "POST",
                    &format!("/v1/shadows/{name}/complete"),
                    &json!({}),
                    &[],
                )?,
                Box::new(teardown_text),
            ),
            ShadowCmd::Delete { name } => (
                c.delete(&format!("/v1/shadows/{name}"))?,
                Box::new(teardown_text),
            ),
            ShadowCmd::History { name } => (
                c.get(&format!("/v1/shadows/{name}/versions"))?,
                Box::new(history_table),
            ),
            ShadowCmd::Diff { name, from, to } => {
                let q = to.map(|t| format!("&to={t}")).unwrap_or_default();
                (
                    c.get(&format!("/v1/shadows/{name}/diff?from={from}{q}"))?,
                    Box::new(diff_text),
                )
            }
            ShadowCmd::Rollback { name, to } => {
                let v = c.send(
                    "POST",
                    &format!("/v1/shadows/{name}/rollback"),
                    &json!({"version": to}),
                    &[],
                )?;
                (v, Box::new(version_line("shadow")))
            }
        },
        ApiCommand::Automation(a) => match a {
            AutomationCmd::Put { file } => {
                let doc = read_doc(&file)?;
                let v = c.send("POST", "/v1/automations", &doc, &[])?;
                (v, Box::new(version_line("automation rule")))
            }
            AutomationCmd::List => (
                c.get("/v1/automations")?,
                Box::new(|v| {
                    table(
                        &["name", "network", "max severity", "enabled", "ttl"],
                        &rows(v)
                            .iter()
                            .map(|x| {
                                vec![
                                    s(x, "/object/name"),
                                    s(x, "/object/network"),
                                    s(x, "/object/max_severity"),
                                    s(x, "/object/enabled"),
                                    format!("{}s", s(x, "/object/template/ttl_s")),
                                ]
                            })
                            .collect::<Vec<_>>(),
                    )
                }),
            ),
            AutomationCmd::Delete { name } => {
                let v = c.delete(&format!("/v1/automations/{name}"))?;
                (
                    v,
                    Box::new(move |_| format!("automation rule {name} deleted\n")),
                )
            }
        },
        ApiCommand::Alert {
            network,
            severity,
            signature,
        } => {
            let v = c.send(
                "POST",
                "/v1/alerts",
                &json!({"network": network, "severity": severity, "signature": signature}),
                &[],
            )?;
            (
                v,
                Box::new(|v| {
                    format!(
                        "alert recorded (audit #{}); shadows created: {}; rules whose shadow is alive: {}\n",
                        s(v, "/audit_seq"),
                        list(v, "/shadows_created"),
                        list(v, "/already_active")
                    )
                }),
            )
        }
        ApiCommand::Audit { limit } => (
            c.get(&format!("/v1/audit?limit={limit}"))?,
            Box::new(|v| {
                table(
                    &["seq", "when", "tenant", "actor", "action", "object"],
                    &rows(v)
                        .iter()
                        .map(|x| {
                            vec![
                                s(x, "/seq"),
                                when(x, "/at_ms"),
                                s(x, "/tenant"),
                                s(x, "/actor"),
                                s(x, "/action"),
                                s(x, "/object"),
                            ]
                        })
                        .collect::<Vec<_>>(),
                )
            }),
        ),
        ApiCommand::Analysis(AnalysisCmd::Suricata) => {
            (c.get("/v1/analysis/suricata")?, Box::new(suricata_text))
        }
        ApiCommand::Nic(n) => match n {
            NicCmd::Status => (
                c.get("/v1/nic")?,
                Box::new(|v| {
                    let mut out = format!(
                        "{} (contract {}, build {}, simulated {}), table generation {}\n",
                        s(v, "/device"),
                        s(v, "/version"),
                        s(v, "/build_id"),
                        s(v, "/simulated"),
                        s(v, "/generation")
                    );
                    out.push_str(&table(
                        &["table", "occupancy", "capacity"],
                        &rows(&v["tables"])
                            .iter()
                            .map(|t| vec![s(t, "/table"), s(t, "/occupancy"), s(t, "/capacity")])
                            .collect::<Vec<_>>(),
                    ));
                    out
                }),
            ),
            NicCmd::Drift => (
                c.get("/v1/nic/drift")?,
                Box::new(|v| format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())),
            ),
            NicCmd::Resync => (
                c.send("POST", "/v1/nic/resync", &json!({}), &[])?,
                Box::new(sync_text),
            ),
            NicCmd::Reset => (
                c.send("POST", "/v1/nic/reset", &json!({}), &[])?,
                Box::new(sync_text),
            ),
            NicCmd::Inject {
                file,
                port,
                line_rate,
            } => {
                let data =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let pace = if line_rate { "line" } else { "timestamps" };
                let v = c.send_bytes(
                    &format!("/v1/sim/inject?port={port}&pace={pace}"),
                    "application/vnd.tcpdump.pcap",
                    &data,
                )?;
                (
                    v,
                    Box::new(|v| {
                        let mut out = format!(
                            "{} frames into {}; captures in {}\n",
                            s(v, "/frames"),
                            s(v, "/port"),
                            s(v, "/out_dir")
                        );
                        out.push_str(&table(
                            &["port", "frames", "capture"],
                            &rows(&v["outputs"])
                                .iter()
                                .map(|o| vec![s(o, "/port"), s(o, "/frames"), s(o, "/path")])
                                .collect::<Vec<_>>(),
                        ));
                        out
                    }),
                )
            }
        },
        ApiCommand::Finding(f) => finding_cmd(&c, f)?,
        ApiCommand::Incident(i) => incident_cmd(&c, i)?,
        ApiCommand::Mitigation(m) => mitigation_cmd(&c, m)?,
    };
    if args.json {
        Ok(serde_json::to_string_pretty(&value)? + "\n")
    } else {
        Ok(text(&value))
    }
}

fn count(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.len().to_string())
        .unwrap_or_else(|| "0".into())
}

fn list(v: &Value, ptr: &str) -> String {
    let items: Vec<String> = v
        .pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn version_line(what: &'static str) -> impl Fn(&Value) -> String {
    move |v| {
        format!(
            "{what} {} is at version {}\n",
            s(v, "/object/name"),
            s(v, "/version")
        )
    }
}

fn tenant_table(v: &Value) -> String {
    table(
        &[
            "tenant",
            "shadows",
            "mirror mbps",
            "mirror rules",
            "table entries",
            "stored bytes",
        ],
        &rows(v)
            .iter()
            .map(|t| {
                let pair = |used: &str, lim: &str| format!("{}/{}", s(t, used), s(t, lim));
                vec![
                    s(t, "/tenant/name"),
                    pair("/usage/shadows", "/tenant/limits/max_shadows"),
                    pair("/usage/mirror_mbps", "/tenant/limits/max_mirror_mbps"),
                    pair("/usage/mirror_rules", "/tenant/limits/max_mirror_rules"),
                    pair("/usage/table_entries", "/tenant/limits/max_table_entries"),
                    pair("/usage/stored_bytes", "/tenant/limits/max_stored_bytes"),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

fn network_text(v: &Value) -> String {
    let mut out = format!(
        "network {} version {} (VNI {}, prefixes {}), updated {}\n",
        s(v, "/object/name"),
        s(v, "/version"),
        s(v, "/object/vni"),
        v.pointer("/object/prefixes")
            .map(|p| p.to_string())
            .unwrap_or_default(),
        when(v, "/updated_at_ms")
    );
    out.push_str(&table(
        &["node", "ip", "mac", "host", "vf", "subnet", "groups"],
        &rows(&v["object"]["nodes"])
            .iter()
            .map(|n| {
                vec![
                    s(n, "/name"),
                    s(n, "/ip"),
                    s(n, "/mac"),
                    s(n, "/host"),
                    s(n, "/vf"),
                    s(n, "/subnet"),
                    n.get("security_groups")
                        .map(|g| g.to_string())
                        .unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    for g in rows(&v["object"]["security_groups"]) {
        out.push_str(&format!("security group {}\n", s(g, "/name")));
        out.push_str(&table(
            &[
                "  direction",
                "protocol",
                "remote",
                "ports",
                "action",
                "priority",
            ],
            &rows(&g["rules"])
                .iter()
                .map(|r| {
                    vec![
                        format!("  {}", s(r, "/direction")),
                        s(r, "/protocol"),
                        s(r, "/remote"),
                        s(r, "/ports"),
                        s(r, "/action"),
                        s(r, "/priority"),
                    ]
                })
                .collect::<Vec<_>>(),
        ));
    }
    out
}

fn shadow_text(v: &Value) -> String {
    let mut out = format!(
        "shadow {} version {}: {} of network {} version {}, {} via {}, VNI {}, session {}, expires {}\n",
        s(v, "/object/name"),
        s(v, "/version"),
        s(v, "/object/state"),
        s(v, "/object/spec/network"),
        s(v, "/object/network_version"),
        s(v, "/object/spec/mode"),
        s(v, "/object/spec/encap"),
        s(v, "/object/vni"),
        s(v, "/object/session"),
        when(v, "/object/expires_at_ms"),
    );
    out.push_str(&format!(
        "capacity: {} Mbit/s, burst {} bytes, 1 in {}\n",
        s(v, "/object/spec/capacity/mbps"),
        s(v, "/object/spec/capacity/burst_bytes"),
        s(v, "/object/spec/capacity/sample")
    ));
    out.push_str(&table(
        &["replica of", "host", "vf"],
        &rows(&v["object"]["replicas"])
            .iter()
            .map(|r| vec![s(r, "/node"), s(r, "/host"), s(r, "/vf")])
            .collect::<Vec<_>>(),
    ));
    out.push_str(&table(
        &[
            "rule node",
            "direction",
            "protocol",
            "src",
            "dst",
            "dst ports",
            "sample",
            "truncate",
            "action",
            "priority",
        ],
        &rows(&v["object"]["spec"]["policy"]["rules"])
            .iter()
            .map(|r| {
                vec![
                    s(r, "/node"),
                    s(r, "/direction"),
                    s(r, "/protocol"),
                    s(r, "/src"),
                    s(r, "/dst"),
                    s(r, "/dst_ports"),
                    s(r, "/sample"),
                    s(r, "/truncate"),
                    s(r, "/action"),
                    s(r, "/priority"),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    out
}

fn history_table(v: &Value) -> String {
    table(
        &["version", "when", "author", "message"],
        &rows(v)
            .iter()
            .map(|h| {
                let msg = if h.get("deleted").and_then(Value::as_bool) == Some(true) {
                    format!("{} (deleted)", s(h, "/message"))
                } else {
                    s(h, "/message")
                };
                vec![s(h, "/version"), when(h, "/at_ms"), s(h, "/author"), msg]
            })
            .collect::<Vec<_>>(),
    )
}

fn diff_text(v: &Value) -> String {
    let changes = rows(v);
    if changes.is_empty() {
        return "no differences\n".into();
    }
    let mut out = String::new();
    for c in changes {
        let sign = match c.get("op").and_then(Value::as_str) {
            Some("added") => "+",
            Some("removed") => "-",
            _ => "~",
        };
        let fields = c
            .get("fields")
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
            .map(|f| {
                format!(
                    " ({})",
                    f.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{sign} {} {}{fields}\n",
            s(c, "/what"),
            s(c, "/path")
        ));
    }
    out
}

fn teardown_text(v: &Value) -> String {
    format!(
        "shadow {} {}: {} NIC entries removed, {} left after read-back, {} stored bytes freed\n",
        s(v, "/shadow"),
        s(v, "/reason"),
        s(v, "/entries_removed"),
        s(v, "/entries_left"),
        s(v, "/bytes_freed")
    )
}

fn sync_text(v: &Value) -> String {
    format!(
        "NIC reprogrammed: {} entries written, {} removed, verified {}\n",
        s(v, "/written"),
        s(v, "/removed"),
        s(v, "/verified")
    )
}

fn finding_cmd(c: &Client, cmd: FindingCmd) -> anyhow::Result<(Value, Render)> {
    Ok(match cmd {
        FindingCmd::List {
            shadow,
            since,
            limit,
        } => {
            let mut q = format!("/v1/findings?limit={limit}");
            if let Some(s) = shadow {
                q.push_str(&format!("&shadow={}", query_escape(&s)));
            }
            if let Some(s) = since {
                q.push_str(&format!("&since={}", query_escape(&s)));
            }
            (c.get(&q)?, Box::new(finding_table))
        }
        FindingCmd::Send { shadow, file } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let v = c.send_bytes(
                &format!("/v1/shadows/{shadow}/findings"),
                "application/x-ndjson",
                &data,
            )?;
            (
                v,
                Box::new(|v| {
                    let mut out = format!(
                        "{} findings stored ({} correlated to a production VM, {} not); incidents: {}\n",
                        s(v, "/accepted"),
                        s(v, "/correlated"),
                        s(v, "/uncorrelated"),
                        rows(&v["incidents"])
                            .iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    out.push_str(&policy_actions(v));
                    out
                }),
            )
        }
    })
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn policy_actions(v: &Value) -> String {
    let acts = rows(&v["mitigations"]);
    if acts.is_empty() {
        return String::new();
    }
    table(
        &["incident", "source", "action", "mitigation", "detail"],
        &acts
            .iter()
            .map(|a| {
                vec![
                    s(a, "/incident"),
                    s(a, "/source"),
                    s(a, "/action"),
                    s(a, "/mitigation"),
                    s(a, "/detail"),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

fn vm_name(v: &Value) -> String {
    if v.is_null() {
        "-".into()
    } else {
        format!("{}/{}", s(v, "/network"), s(v, "/vm"))
    }
}

fn finding_table(v: &Value) -> String {
    table(
        &[
            "seq",
            "when",
            "shadow",
            "source",
            "destination",
            "sev",
            "signature",
            "production",
            "incident",
        ],
        &rows(v)
            .iter()
            .map(|f| {
                let prod = match s(f, "/correlation/ours").as_str() {
                    "src" => vm_name(&f["correlation"]["src_vm"]),
                    "dest" => vm_name(&f["correlation"]["dest_vm"]),
                    "both" => format!(
                        "{} -> {}",
                        vm_name(&f["correlation"]["src_vm"]),
                        vm_name(&f["correlation"]["dest_vm"])
                    ),
                    _ => "no production node".into(),
                };
                vec![
                    s(f, "/seq"),
                    when(f, "/at_ms"),
                    s(f, "/shadow"),
                    format!("{}:{}", s(f, "/src_ip"), s(f, "/src_port")),
                    format!("{}:{}", s(f, "/dest_ip"), s(f, "/dest_port")),
                    s(f, "/severity"),
                    format!("{} {}", s(f, "/signature_id"), s(f, "/signature")),
                    prod,
                    s(f, "/incident"),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

fn incident_row(i: &Value) -> Vec<String> {
    vec![
        s(i, "/id"),
        s(i, "/state"),
        s(i, "/network"),
        when(i, "/first_seen_ms"),
        when(i, "/last_seen_ms"),
        s(i, "/findings"),
        s(i, "/max_severity"),
        list(i, "/sources"),
        list(i, "/vms"),
        list(i, "/mitigations"),
    ]
}

const INCIDENT_HEADERS: [&str; 10] = [
    "id",
    "state",
    "network",
    "first seen",
    "last seen",
    "findings",
    "sev",
    "sources",
    "vms",
    "mitigations",
];

fn incident_cmd(c: &Client, cmd: IncidentCmd) -> anyhow::Result<(Value, Render)> {
    Ok(match cmd {
        IncidentCmd::List => (
            c.get("/v1/incidents")?,
            Box::new(|v| {
                table(
                    &INCIDENT_HEADERS,
                    &rows(v).iter().map(incident_row).collect::<Vec<_>>(),
                )
            }),
        ),
        IncidentCmd::Show { id } => (
            c.get(&format!("/v1/incidents/{id}"))?,
            Box::new(|v| {
                let i = &v["incident"];
                let mut out = table(&INCIDENT_HEADERS, &[incident_row(i)]);
                out.push('\n');
                out.push_str(&table(
                    &["signature id", "signature", "count"],
                    &rows(&i["signatures"])
                        .iter()
                        .map(|x| vec![s(x, "/signature_id"), s(x, "/signature"), s(x, "/count")])
                        .collect::<Vec<_>>(),
                ));
                if !rows(&i["refused"]).is_empty() {
                    out.push_str(&format!("refused: {}\n", list(i, "/refused")));
                }
                out.push('\n');
                out.push_str(&finding_table(&v["findings"]));
                out
            }),
        ),
        IncidentCmd::Close { id } => (
            c.send(
                "POST",
                &format!("/v1/incidents/{id}/close"),
                &json!({}),
                &[],
            )?,
            Box::new(|v| format!("incident {} closed\n", s(v, "/id"))),
        ),
    })
}

fn mitigation_table(v: &Value) -> String {
    table(
        &[
            "id",
            "state",
            "network",
            "blocks",
            "incident",
            "origin",
            "expires",
            "last trial",
        ],
        &rows(v)
            .iter()
            .map(|m| {
                let o = &m["object"];
                let mut rule = s(o, "/rule/src");
                if !o["rule"]["dst"].is_null() {
                    rule.push_str(&format!(" to {}", s(o, "/rule/dst")));
                }
                if !o["rule"]["protocol"].is_null() {
                    rule.push_str(&format!(" {}", s(o, "/rule/protocol")));
                }
                if !o["rule"]["dst_ports"].is_null() {
                    rule.push_str(&format!(" port {}", s(o, "/rule/dst_ports")));
                }
                if o["rule"]["connections_only"] == true {
                    rule.push_str(" connections");
                }
                if !o["rule"]["rate_limit"].is_null() {
                    rule.push_str(&format!(" <= {}/s", s(o, "/rule/rate_limit/pps")));
                }
                let trial = if o["last_trial"].is_null() {
                    "-".into()
                } else {
                    format!(
                        "{} pkts ({} in findings)",
                        s(o, "/last_trial/blocked/packets"),
                        s(o, "/last_trial/in_findings/packets")
                    )
                };
                vec![
                    s(o, "/id"),
                    s(o, "/state"),
                    s(o, "/network"),
                    rule,
                    s(o, "/incident"),
                    s(o, "/origin"),
                    when(o, "/expires_at_ms"),
                    trial,
                ]
            })
            .collect::<Vec<_>>(),
    )
}

fn trial_text(v: &Value) -> String {
    let vol = |p: &str| {
        format!(
            "{} packets, {} bytes, {} flows",
            s(v, &format!("{p}/packets")),
            s(v, &format!("{p}/bytes")),
            s(v, &format!("{p}/flows"))
        )
    };
    let mut out = format!(
        "{}: {} frames, {} replayed, {} skipped, {} dropped by the ACL already\n\
         would have blocked: {}\n  in findings:     {}\n  not in findings: {}\n",
        s(v, "/capture"),
        s(v, "/frames"),
        s(v, "/replayed"),
        s(v, "/skipped"),
        s(v, "/already_blocked"),
        vol("/blocked"),
        vol("/in_findings"),
        vol("/not_in_findings"),
    );
    out.push_str(&table(
        &["vm", "direction", "packets", "bytes", "flows"],
        &rows(&v["per_vm"])
            .iter()
            .map(|x| {
                vec![
                    s(x, "/vm"),
                    s(x, "/direction"),
                    s(x, "/blocked/packets"),
                    s(x, "/blocked/bytes"),
                    s(x, "/blocked/flows"),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    out
}

fn mitigation_change(v: &Value) -> String {
    let mut out = format!(
        "mitigation {} is {} (version {}); NIC: {} entries written, {} removed\n",
        s(v, "/mitigation/object/id"),
        s(v, "/mitigation/object/state"),
        s(v, "/mitigation/version"),
        s(v, "/sync/written"),
        s(v, "/sync/removed")
    );
    if let Some(a) = v.get("activation") {
        out.push_str(&format!(
            "active from NIC table generation {} at {}, until {}\n",
            s(a, "/nic_generation"),
            when(a, "/active_at_ms"),
            when(a, "/expires_at_ms")
        ));
        for e in rows(&a["acl"]) {
            out.push_str(&format!(
                "  ACL slot {}: {}\n",
                s(e, "/slot"),
                s(e, "/summary")
            ));
        }
    }
    out
}

fn mitigation_cmd(c: &Client, cmd: MitigationCmd) -> anyhow::Result<(Value, Render)> {
    Ok(match cmd {
        MitigationCmd::List => (c.get("/v1/mitigations")?, Box::new(mitigation_table)),
        MitigationCmd::Policy { file } => {
            let v = match file {
                Some(f) => c.send("PUT", "/v1/mitigation-policy", &read_doc(&f)?, &[])?,
                None => c.get("/v1/mitigation-policy")?,
            };
            (
                v,
                Box::new(|v| {
                    let o = &v["object"];
                    format!(
                        "mode {}; an incident qualifies at severity <= {}, {} findings, score >= {}\n\
                         allow-list: {}; at most {} rules, each for {}s; incidents group by {} within {}s (version {})\n\
                         floods from >= {} sources at one target: rate limit at {} x the target's baseline, >= {}/s\n",
                        s(o, "/mode"),
                        s(o, "/min_severity"),
                        s(o, "/min_findings"),
                        s(o, "/min_score"),
                        list(o, "/allow_list"),
                        s(o, "/max_rules"),
                        s(o, "/rule_ttl_s"),
                        list(o, "/group_by"),
                        s(o, "/incident_window_s"),
                        s(v, "/version"),
                        s(o, "/flood_min_sources"),
                        s(o, "/flood_headroom"),
                        s(o, "/flood_min_pps"),
                    )
                }),
            )
        }
        MitigationCmd::Propose {
            src,
            dst,
            connections_only,
            rate_limit,
            network,
            shadow,
            incident,
            protocol,
            dst_ports,
            ttl,
            reason,
        } => {
            let rate_limit = rate_limit.map(|(pps, burst)| json!({"pps": pps, "burst": burst}));
            let v = c.send(
                "POST",
                "/v1/mitigations",
                &json!({
                    "rule": {
                        "src": src, "protocol": protocol, "dst_ports": dst_ports, "dst": dst,
                        "connections_only": connections_only, "rate_limit": rate_limit,
                    },
                    "network": network, "shadow": shadow, "incident": incident,
                    "ttl_s": ttl, "reason": reason,
                }),
                &[],
            )?;
            (
                v,
                Box::new(|v| {
                    format!(
                        "mitigation {} proposed: {} {} in network {}\n",
                        s(v, "/object/id"),
                        if v["object"]["rule"]["rate_limit"].is_null() {
                            "block"
                        } else {
                            "rate-limit"
                        },
                        s(v, "/object/rule/src"),
                        s(v, "/object/network")
                    )
                }),
            )
        }
        MitigationCmd::Trial { id, pcap, artefact } => {
            let path = format!("/v1/mitigations/{id}/trial");
            let v = match (pcap, artefact) {
                (Some(p), _) => {
                    let data =
                        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                    c.send_bytes(&path, "application/vnd.tcpdump.pcap", &data)?
                }
                (None, Some(a)) => c.send("POST", &path, &json!({"artefact": a}), &[])?,
                (None, None) => bail!("name a capture: --pcap FILE or --artefact NAME"),
            };
            (v, Box::new(trial_text))
        }
        MitigationCmd::Commit { id } => (
            c.send(
                "POST",
                &format!("/v1/mitigations/{id}/commit"),
                &json!({}),
                &[],
            )?,
            Box::new(mitigation_change),
        ),
        MitigationCmd::Withdraw { id } => (
            c.delete(&format!("/v1/mitigations/{id}"))?,
            Box::new(mitigation_change),
        ),
    })
}

/// Reads a labels file and checks it against the capture it goes with (one row per frame),
/// naming the file and line of what is wrong.
fn check_labels(labels: &Path, capture: &Path) -> anyhow::Result<Vec<u8>> {
    let data = std::fs::read(labels).with_context(|| format!("reading {}", labels.display()))?;
    let text = std::str::from_utf8(&data)
        .with_context(|| format!("{}: not UTF-8 text", labels.display()))?;
    let rows = shadownet_host::analysis::trafficgen::parse_labels(text)
        .with_context(|| labels.display().to_string())?;
    let mut r = shadownet_capture::CaptureReader::open(capture)
        .with_context(|| format!("reading {}", capture.display()))?;
    let (mut buf, mut frames) = (Vec::new(), 0usize);
    while let Some(rec) = r.next_into(&mut buf) {
        rec.with_context(|| capture.display().to_string())?;
        frames += 1;
    }
    if rows.len() != frames {
        bail!(
            "{}: {} rows, but {} has {frames} frames (labels go with the capture they were written with)",
            labels.display(),
            rows.len(),
            capture.display()
        );
    }
    Ok(data)
}
