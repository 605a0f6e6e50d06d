//! A network namespace with a veth pair: the live input of an analysis node.
//!
//! The namespace holds one end of the pair (an analysis node such as Suricata captures on
//! it, started with `ip netns exec`); the other end stays in the host's namespace, where
//! [`NetnsVeth::writer`] writes the shadow's decapsulated frames into it. Names carry the
//! process id and a counter, so parallel tests and instances never collide, and namespaces
//! and links left behind by processes that died are removed when the next one is created.
//! Needs CAP_NET_ADMIN (root) and `ip` from iproute2.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use thiserror::Error;

use super::sys::PacketSocket;

/// Prefix of every namespace this module creates: `shadownet-<pid>-<n>`.
pub const NETNS_PREFIX: &str = "shadownet-";

/// Why a namespace or veth pair could not be set up.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// A command of iproute2 failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
    /// A command could not be started (iproute2 missing?) or a file not read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn run(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Io {
            what: format!("running ip {}", args.join(" ")),
            source: e,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Command {
            command: format!("ip {}", args.join(" ")),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A namespace and a veth pair, removed on drop.
#[derive(Debug)]
pub struct NetnsVeth {
    netns: String,
    host_if: String,
    ns_if: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl NetnsVeth {
    /// Creates a namespace `shadownet-<pid>-<n>` and a veth pair with one end in it, both
    /// ends up, IPv6 off (so the kernel sends no neighbour discovery of its own into the
    /// capture). Removes stale namespaces and links of dead processes first.
    pub fn create() -> Result<NetnsVeth, NetnsError> {
        remove_stale();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let v = NetnsVeth {
            netns: format!("{NETNS_PREFIX}{pid}-{n}"),
            // Interface names have at most 15 bytes: "sn" + pid in hex (<= 6) + h/n + n.
            host_if: format!("sn{pid:x}h{n:x}"),
            ns_if: format!("sn{pid:x}n{n:x}"),
        };
        // From here on, drop cleans up whatever part exists.
        run(&["netns", "add", &v.netns])?;
        run(&[
            "link", "add", &v.host_if, "type", "veth", "peer", "name", &v.ns_if,
        ])?;
        run(&["link", "set", &v.ns_if, "netns", &v.netns])?;
        disable_ipv6(&v.host_if, None);
        disable_ipv6(&v.ns_if, Some(&v.netns));
        run(&["link", "set", &v.host_if, "up"])?;
        run(&["-n", &v.netns, "link", "set", "lo", "up"])?;
        run(&["-n", &v.netns, "link", "set", &v.ns_if, "up"])?;
        Ok(v)
    }

    /// The namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The end in the host's namespace (where frames are written).
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The end inside the namespace (where the analysis node captures).
    pub fn ns_interface(&self) -> &str {
        &self.ns_if
    }

    /// A raw socket that writes Ethernet frames into the host end; they come out of the
    /// namespace's end. Needs CAP_NET_RAW.
    pub fn writer(&self) -> Result<PacketSocket, NetnsError> {
        let path = format!("/sys/class/net/{}/ifindex", self.host_if);
        let io = |what: String| move |e| NetnsError::Io { what, source: e };
        let index = std::fs::read_to_string(&path).map_err(io(format!("reading {path}")))?;
        let index: u32 = index.trim().parse().map_err(|_| NetnsError::Command {
            command: format!("reading {path}"),
            output: format!("`{}` is not an interface index", index.trim()),
        })?;
        PacketSocket::bind(index).map_err(io(format!("AF_PACKET socket on {}", self.host_if)))
    }
}

fn disable_ipv6(interface: &str, netns: Option<&str>) {
    let key = format!("net.ipv6.conf.{interface}.disable_ipv6=1");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "sysctl", "-q", "-w", &key]);
            c
        }
        None => {
            let mut c = Command::new("sysctl");
            c.args(["-q", "-w", &key]);
            c
        }
    };
    // Best effort: a kernel without IPv6 has nothing to disable.
    if let Err(e) = c.output() {
        tracing::debug!(interface, error = %e, "disabling IPv6");
    }
}

impl Drop for NetnsVeth {
    fn drop(&mut self) {
        // Deleting the host end removes its peer too; the namespace goes last.
        if let Err(e) = run(&["link", "del", &self.host_if]) {
            tracing::debug!(error = %e, "removing the veth pair");
        }
        if let Err(e) = run(&["netns", "del", &self.netns]) {
            tracing::warn!(error = %e, "removing the network namespace");
        }
    }
}

/// Removes namespaces `shadownet-<pid>-<n>` and host-side links `sn<pid hex>h<n>` whose
/// process no longer runs.
pub fn remove_stale() {
    for line in output(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !alive(pid) {
            tracing::info!(netns = name, "removing a stale network namespace");
            let _ = run(&["netns", "del", name]);
        }
    }
    for line in output(&["-o", "link", "show"]).lines() {
        // "12: sn1a2bh0@if11: <...>"
        let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap_or(n))
        else {
            continue;
        };
        let Some(rest) = name.strip_prefix("sn") else {
            continue;
        };
        let Some((pid_hex, n)) = rest.split_once('h') else {
            continue;
        };
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(pid) = u32::from_str_radix(pid_hex, 16) else {
            continue;
        };
        if !alive(pid) {
            tracing::info!(link = name, "removing a stale veth pair");
            let _ = run(&["link", "del", name]);
        }
    }
}
