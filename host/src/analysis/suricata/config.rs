//! The configuration of one Suricata instance, rendered to a complete `suricata.yaml`.
//!
//! Nothing of `/etc/suricata/suricata.yaml` is used: every setting the instance depends on is
//! written here, so an instance behaves the same on every machine. Only the classification
//! and reference tables are taken from the distribution when they exist (they name alert
//! classes, they do not change detection).

use std::{
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
};

use super::SuricataError;

/// Where an instance reads packets from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Live capture with AF_PACKET on an interface (in the instance's network namespace).
    AfPacket {
        /// Interface name (at most 15 bytes).
        interface: String,
    },
    /// One capture file, read once (`-r`); Suricata exits at its end.
    PcapFile {
        /// The capture.
        path: PathBuf,
    },
    /// Unix-socket mode (`--unix-socket`): the engine waits for `pcap-file` commands on its
    /// command socket and reads the captures it is given one after the other, with the rules
    /// loaded once.
    UnixSocket,
}

/// Suricata's detect-engine profile: how many rule groups it builds. `Low` starts fastest
/// and uses the least memory, which is what a 2-core analysis node wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectProfile {
    /// Few groups: fast start, small memory.
    #[default]
    Low,
    /// Suricata's default.
    Medium,
    /// Many groups: the fastest inspection, the slowest start.
    High,
}

impl DetectProfile {
    fn name(self) -> &'static str {
        match self {
            DetectProfile::Low => "low",
            DetectProfile::Medium => "medium",
            DetectProfile::High => "high",
        }
    }
}

/// The configuration of one Suricata instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuricataConfig {
    /// Directory of the instance's own files: `suricata.yaml` and the command socket.
    pub run_dir: PathBuf,
    /// Directory of its output: `eve.json`, `suricata.log`.
    pub log_dir: PathBuf,
    /// Directory of the rule files (`default-rule-path`).
    pub rules_dir: PathBuf,
    /// Rule files in `rules_dir` to load.
    pub rule_files: Vec<String>,
    /// The shadow's prefixes (`A.B.C.D/LEN` or IPv6): `HOME_NET`. Everything else is
    /// `EXTERNAL_NET`.
    pub home_net: Vec<String>,
    /// Where packets come from.
    pub input: Input,
    /// Seconds between EVE `stats` events (at least 1).
    pub stats_interval_s: u32,
    /// Detect-engine profile.
    pub detect_profile: DetectProfile,
    /// Whether to drop packets with bad checksums. Off: mirror copies may be truncated or
    /// come from checksum-offloading senders, and the shadow must see what production saw.
    pub checksum_checks: bool,
}

/// The rule directory shipped in the repository (`analysis/rules`).
pub fn bundled_rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../analysis/rules")
}

/// The rule file shipped in the repository.
pub const BUNDLED_RULE_FILE: &str = "shadownet.rules";

/// Name of the generated configuration in the run directory.
pub const CONFIG_FILE: &str = "suricata.yaml";
/// Name of the command socket in the run directory.
pub const SOCKET_FILE: &str = "suricata.sock";
/// Name of the EVE output in the log directory.
pub const EVE_FILE: &str = "eve.json";

/// Classification and reference tables, from the distribution's package when installed.
const CLASSIFICATION: &str = "/etc/suricata/classification.config";
const REFERENCE: &str = "/etc/suricata/reference.config";

impl SuricataConfig {
    /// A configuration with the bundled rules, a 1 s stats interval, the `low` profile and
    /// checksum checks off; run and log directories are `dir/run` and `dir/log`.
    pub fn new(dir: &Path, home_net: Vec<String>, input: Input) -> SuricataConfig {
        SuricataConfig {
            run_dir: dir.join("run"),
            log_dir: dir.join("log"),
            rules_dir: bundled_rules_dir(),
            rule_files: vec![BUNDLED_RULE_FILE.to_string()],
            home_net,
            input,
            stats_interval_s: 1,
            detect_profile: DetectProfile::Low,
            checksum_checks: false,
        }
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.run_dir.join(CONFIG_FILE)
    }

    /// The command socket.
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.join(SOCKET_FILE)
    }

    /// The EVE file.
    pub fn eve_path(&self) -> PathBuf {
        self.log_dir.join(EVE_FILE)
    }

    /// Checks every field; names the first one that is wrong.
    pub fn validate(&self) -> Result<(), SuricataError> {
        let bad = |field: &str, reason: String| SuricataError::Config {
            field: field.to_string(),
            reason,
        };
        if self.home_net.is_empty() {
            return Err(bad("home_net", "at least one prefix is needed".into()));
        }
        for p in &self.home_net {
            check_prefix(p).map_err(|r| bad("home_net", format!("`{p}`: {r}")))?;
        }
        if self.rule_files.is_empty() {
            return Err(bad("rule_files", "at least one rule file is needed".into()));
        }
        for f in &self.rule_files {
            if f.is_empty() || f.contains('/') || f.chars().any(|c| c.is_control() || c == '"') {
                return Err(bad(
                    "rule_files",
                    format!("`{f}` is not a file name in the rules directory"),
                ));
            }
        }
        if self.stats_interval_s == 0 {
            return Err(bad("stats_interval_s", "must be at least 1 second".into()));
        }
        for (field, p) in [
            ("run_dir", &self.run_dir),
            ("log_dir", &self.log_dir),
            ("rules_dir", &self.rules_dir),
        ] {
            check_path(p).map_err(|r| bad(field, r))?;
        }
        // The socket path must fit sockaddr_un's 108 bytes.
        let sock = self.socket_path();
        if sock.as_os_str().len() >= 108 {
            return Err(bad(
                "run_dir",
                format!(
                    "the command socket path {} is longer than a Unix socket address allows",
                    sock.display()
                ),
            ));
        }
        match &self.input {
            Input::AfPacket { interface } => {
                if interface.is_empty()
                    || interface.len() > 15
                    || !interface
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(bad(
                        "input.interface",
                        format!(
                            "`{interface}` is not an interface name (1-15 of A-Z a-z 0-9 - _ .)"
                        ),
                    ));
                }
            }
            Input::PcapFile { path } => check_path(path).map_err(|r| bad("input.path", r))?,
            Input::UnixSocket => {}
        }
        Ok(())
    }

    /// The complete `suricata.yaml`.
    pub fn render(&self) -> Result<String, SuricataError> {
        self.validate()?;
        let q = |p: &Path| quote(&p.to_string_lossy());
        let mut y = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(y, "%YAML 1.1\n---\n# Generated by shadownet; do not edit.");
        let _ = writeln!(y, "vars:\n  address-groups:");
        let _ = writeln!(
            y,
            "    HOME_NET: {}",
            quote(&format!("[{}]", self.home_net.join(",")))
        );
        let _ = writeln!(y, "    EXTERNAL_NET: \"!$HOME_NET\"");
        for g in [
            "HTTP_SERVERS",
            "SMTP_SERVERS",
            "SQL_SERVERS",
            "DNS_SERVERS",
            "TELNET_SERVERS",
            "AIM_SERVERS",
            "DC_SERVERS",
            "DNP3_SERVER",
            "DNP3_CLIENT",
            "MODBUS_CLIENT",
            "MODBUS_SERVER",
            "ENIP_CLIENT",
            "ENIP_SERVER",
        ] {
            let _ = writeln!(y, "    {g}: \"$HOME_NET\"");
        }
        let _ = writeln!(y, "  port-groups:");
        for (g, v) in [
            ("HTTP_PORTS", "80"),
            ("SHELLCODE_PORTS", "!80"),
            ("ORACLE_PORTS", "1521"),
            ("SSH_PORTS", "22"),
            ("DNP3_PORTS", "20000"),
            ("MODBUS_PORTS", "502"),
            ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
            ("FTP_PORTS", "21"),
            ("GENEVE_PORTS", "6081"),
            ("VXLAN_PORTS", "4789"),
            ("TEREDO_PORTS", "3544"),
        ] {
            let _ = writeln!(y, "    {g}: {}", quote(v));
        }
        let _ = writeln!(y, "default-log-dir: {}", q(&self.log_dir));
        let _ = writeln!(y, "default-rule-path: {}", q(&self.rules_dir));
        let _ = writeln!(y, "rule-files:");
        for f in &self.rule_files {
            let _ = writeln!(y, "  - {}", quote(f));
        }
        if Path::new(CLASSIFICATION).is_file() {
            let _ = writeln!(y, "classification-file: {}", quote(CLASSIFICATION));
        }
        if Path::new(REFERENCE).is_file() {
            let _ = writeln!(y, "reference-config-file: {}", quote(REFERENCE));
        }
        let _ = write!(
            y,
            "\
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: {eve}
      community-id: yes
      types:
        - alert:
            metadata: yes
            tagged-packets: no
        - anomaly:
            enabled: yes
        - flow
        - stats:
            totals: yes
            threads: no
            deltas: no
stats:
  enabled: yes
  interval: {interval}
logging:
  default-log-level: notice
  outputs:
    - console:
        enabled: yes
    - file:
        enabled: yes
        level: info
        filename: suricata.log
unix-command:
  enabled: yes
  filename: {sock}
detect:
  profile: {profile}
  sgh-mpm-context: auto
  inspection-recursion-limit: 3000
mpm-algo: auto
spm-algo: auto
threading:
  set-cpu-affinity: no
  detect-thread-ratio: 1.0
max-pending-packets: 1024
runmode: {runmode}
pcap-file:
  checksum-checks: {checksums}
host-mode: sniffer-only
flow:
  memcap: 64mb
  hash-size: 65536
  prealloc: 1000
stream:
  memcap: 64mb
  checksum-validation: {checksums}
  reassembly:
    memcap: 128mb
    depth: 1mb
defrag:
  memcap: 32mb
app-layer:
  protocols:
    http:
      enabled: yes
    tls:
      enabled: yes
    dns:
      tcp:
        enabled: yes
      udp:
        enabled: yes
    ssh:
      enabled: yes
    smb:
      enabled: yes
    dcerpc:
      enabled: yes
    ftp:
      enabled: yes
    smtp:
      enabled: yes
    krb5:
      enabled: yes
    ntp:
      enabled: yes
    dhcp:
      enabled: yes
    ldap:
      tcp:
        enabled: yes
      udp:
        enabled: yes
decoder:
  teredo:
    enabled: true
  vxlan:
    enabled: true
  geneve:
    enabled: true
",
            eve = quote(EVE_FILE),
            interval = self.stats_interval_s,
            sock = q(&self.socket_path()),
            profile = self.detect_profile.name(),
            runmode = match self.input {
                Input::AfPacket { .. } => "workers",
                _ => "single",
            },
            checksums = if self.checksum_checks { "yes" } else { "no" },
        );
        if let Input::AfPacket { interface } = &self.input {
            let _ = write!(
                y,
                "\
af-packet:
  - interface: {iface}
    threads: 1
    cluster-id: 99
    cluster-type: cluster_flow
    defrag: yes
    use-mmap: yes
    tpacket-v3: no
    checksum-checks: {checksums}
",
                iface = quote(interface),
                checksums = if self.checksum_checks { "yes" } else { "no" },
            );
        }
        Ok(y)
    }

    /// Creates the run and log directories and writes the configuration; returns its path.
    pub fn write(&self) -> Result<PathBuf, SuricataError> {
        let text = self.render()?;
        for d in [&self.run_dir, &self.log_dir] {
            std::fs::create_dir_all(d).map_err(|e| SuricataError::io(d, e))?;
        }
        let path = self.config_path();
        std::fs::write(&path, text).map_err(|e| SuricataError::io(&path, e))?;
        Ok(path)
    }

    /// The arguments that run this configuration (after the binary): config, log directory,
    /// input, and no checksum verification unless asked for. Suricata stays in the
    /// foreground (no `-D`), so the supervisor owns its process.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "-c".to_string(),
            self.config_path().to_string_lossy().into_owned(),
            "-l".to_string(),
            self.log_dir.to_string_lossy().into_owned(),
        ];
        if !self.checksum_checks {
            a.extend(["-k".to_string(), "none".to_string()]);
        }
        match &self.input {
            Input::AfPacket { interface } => a.push(format!("--af-packet={interface}")),
            Input::PcapFile { path } => {
                a.push("-r".to_string());
                a.push(path.to_string_lossy().into_owned());
            }
            Input::UnixSocket => a.push("--unix-socket".to_string()),
        }
        a
    }

    /// Writes the configuration and has Suricata check it and the rules (`suricata -T`).
    /// The error carries Suricata's own messages.
    pub fn test(&self, binary: &Path) -> Result<(), SuricataError> {
        let path = self.write()?;
        let out = Command::new(binary)
            .arg("-T")
            .arg("-c")
            .arg(&path)
            .arg("-l")
            .arg(&self.log_dir)
            .output()
            .map_err(|e| SuricataError::Spawn {
                binary: binary.to_path_buf(),
                source: e,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SuricataError::ConfigRejected {
                path,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn check_path(p: &Path) -> Result<(), String> {
    let s = p.to_string_lossy();
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(format!("{s:?} has control characters"));
    }
    Ok(())
}

fn check_prefix(p: &str) -> Result<(), String> {
    let (addr, len) = p.split_once('/').ok_or("not ADDRESS/LENGTH")?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("`{len}` is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("prefix length {len} is over {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SuricataConfig {
        SuricataConfig::new(
            Path::new("/tmp/x"),
            vec!["192.168.10.0/24".into(), "fd00::/64".into()],
            Input::AfPacket {
                interface: "veth0".into(),
            },
        )
    }

    #[test]
    fn renders_home_net_rules_eve_and_af_packet() {
        let y = cfg().render().expect("valid");
        assert!(
            y.contains("HOME_NET: \"[192.168.10.0/24,fd00::/64]\""),
            "{y}"
        );
        assert!(y.contains("default-rule-path: \""), "{y}");
        assert!(y.contains("  - \"shadownet.rules\""), "{y}");
        assert!(y.contains("metadata: yes"));
        assert!(y.contains("interface: \"veth0\""));
        assert!(y.contains("filename: \"/tmp/x/run/suricata.sock\""));
        assert!(y.contains("profile: low"));
        assert!(!y.contains("daemon"));
        let a = cfg().args();
        assert!(a.contains(&"--af-packet=veth0".to_string()), "{a:?}");
        assert!(!a.contains(&"-D".to_string()));
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = cfg();
        c.home_net = vec!["192.168.10.0/33".into()];
        let e = c.render().expect_err("bad prefix").to_string();
        assert!(e.contains("home_net") && e.contains("33"), "{e}");
        let mut c = cfg();
        c.home_net.clear();
        assert!(
            c.render()
                .expect_err("empty")
                .to_string()
                .contains("home_net")
        );
        let mut c = cfg();
        c.input = Input::AfPacket {
            interface: "a-very-long-interface".into(),
        };
        assert!(
            c.validate()
                .expect_err("long")
                .to_string()
                .contains("interface")
        );
        let mut c = cfg();
        c.rule_files = vec!["../etc/passwd".into()];
        assert!(
            c.validate()
                .expect_err("path")
                .to_string()
                .contains("rule_files")
        );
        let mut c = cfg();
        c.stats_interval_s = 0;
        assert!(
            c.validate()
                .expect_err("0")
                .to_string()
                .contains("stats_interval_s")
        );
    }

    #[test]
    fn quoting_escapes_yaml_specials() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
