//! `shadowctl device`: shadownet NICs on this machine's PCI bus, bound to vfio-pci and opened
//! through VFIO.

use std::{io::Write, path::PathBuf};

use anyhow::Context;
use clap::Subcommand;
use shadownet_host::{
    driver::{Identity, Nic},
    vfio::{
        PciAddress, PciFunction, Sysfs, VfioDevice, VfioEnv,
        bind::{self, BindOutcome},
    },
};
use shadownet_hw::block_type;

/// `shadowctl device …`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List shadownet NICs (with --all, every PCI function): address, ids, driver, IOMMU group.
    List {
        /// Every PCI function, not only shadownet NICs.
        #[arg(long)]
        all: bool,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// sysfs root.
        #[arg(long, default_value = "/sys")]
        sysfs: PathBuf,
    },
    /// Bind a shadownet NIC to vfio-pci (refused when its IOMMU group is shared with a
    /// device bound to a host driver).
    Bind {
        /// PCI address (DDDD:BB:DD.F).
        #[arg(value_parser = parse_address)]
        address: PciAddress,
        /// sysfs root.
        #[arg(long, default_value = "/sys")]
        sysfs: PathBuf,
    },
    /// Give a function back to the host: clear driver_override, unbind, reprobe.
    Unbind {
        /// PCI address (DDDD:BB:DD.F).
        #[arg(value_parser = parse_address)]
        address: PciAddress,
        /// sysfs root.
        #[arg(long, default_value = "/sys")]
        sysfs: PathBuf,
    },
    /// Open a shadownet NIC through VFIO and show what the driver reads from it.
    Info {
        /// PCI address (DDDD:BB:DD.F).
        #[arg(value_parser = parse_address)]
        address: PciAddress,
        /// sysfs root (the VFIO nodes are always /dev/vfio).
        #[arg(long, default_value = "/sys")]
        sysfs: PathBuf,
    },
}

fn parse_address(s: &str) -> Result<PciAddress, String> {
    s.parse()
        .map_err(|e: shadownet_host::vfio::VfioError| e.to_string())
}

/// Runs a `device` subcommand, printing to `out`.
pub fn run(cmd: DeviceCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::List { all, json, sysfs } => {
            let sysfs = Sysfs::at(sysfs);
            let functions = sysfs.scan()?;
            let shown: Vec<PciFunction> = functions
                .iter()
                .filter(|f| all || f.ours)
                .cloned()
                .collect();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
            } else if shown.is_empty() {
                writeln!(
                    out,
                    "no shadownet NIC ({} PCI functions under {}; --all lists them)",
                    functions.len(),
                    sysfs.devices_dir().display()
                )?;
            } else {
                out.write_all(render_table(&shown).as_bytes())?;
            }
        }
        DeviceCommand::Bind { address, sysfs } => {
            let outcome = bind::bind_vfio(&Sysfs::at(sysfs), address)?;
            writeln!(out, "{}", describe(&outcome, "bound to vfio-pci"))?;
        }
        DeviceCommand::Unbind { address, sysfs } => {
            let outcome = bind::unbind(&Sysfs::at(sysfs), address)?;
            writeln!(out, "{}", describe(&outcome, "released"))?;
        }
        DeviceCommand::Info { address, sysfs } => {
            let env = VfioEnv {
                sysfs: Sysfs::at(sysfs),
                ..VfioEnv::system()
            };
            let device = VfioDevice::open_in(&env, address)
                .with_context(|| format!("opening {address} through VFIO"))?;
            let function = device.function().clone();
            let nic = Nic::open(device).with_context(|| format!("identifying {address}"))?;
            out.write_all(render_identity(&function, &nic.identify()).as_bytes())?;
        }
    }
    Ok(())
}

fn describe(o: &BindOutcome, verb: &str) -> String {
    let driver = |d: &Option<String>| d.clone().unwrap_or_else(|| "no driver".to_string());
    if o.changed {
        format!(
            "{}: {verb} (was {}, now {})",
            o.address,
            driver(&o.previous_driver),
            driver(&o.driver)
        )
    } else {
        format!("{}: nothing to do ({})", o.address, driver(&o.driver))
    }
}

/// The table `device list` prints.
pub fn render_table(functions: &[PciFunction]) -> String {
    let mut s = format!(
        "{:<13} {:<9} {:<6} {:<16} {:<5} {:<4} {:>9}  {}\n",
        "ADDRESS", "IDS", "CLASS", "DRIVER", "IOMMU", "NUMA", "BAR0", "SHADOWNET"
    );
    for f in functions {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        let mut group = opt(f.iommu_group.map(|g| g.to_string()));
        if !f.group_peers.is_empty() {
            group.push('+');
        }
        s.push_str(&format!(
            "{:<13} {:04x}:{:04x} {:06x} {:<16} {:<5} {:<4} {:>9}  {}\n",
            f.address.to_string(),
            f.vendor,
            f.device,
            f.class,
            opt(f.driver.clone()),
            group,
            opt(f.numa_node.map(|n| n.to_string())),
            opt(f.bar0_size.map(human_size)),
            if f.ours { "yes" } else { "no" }
        ));
    }
    if functions.iter().any(|f| !f.group_peers.is_empty()) {
        s.push_str("(IOMMU group marked +: shared with other functions)\n");
    }
    s
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b.is_multiple_of(1 << 30) => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// What `device info` prints.
pub fn render_identity(f: &PciFunction, id: &Identity) -> String {
    let (major, minor, patch) = id.version;
    let mut s = format!(
        "shadownet NIC {} ({:04x}:{:04x}, IOMMU group {}, NUMA node {})\n",
        f.address,
        f.vendor,
        f.device,
        f.iommu_group.map_or("-".to_string(), |g| g.to_string()),
        f.numa_node.map_or("-".to_string(), |n| n.to_string())
    );
    s.push_str(&format!(
        "  contract version {major}.{minor}.{patch}, build {:#010x}, simulated {}\n",
        id.build_id,
        id.simulated()
    ));
    s.push_str(&format!(
        "  {} VF ports, {} mirror sessions, {} MHz pipeline clock, uplink {} Gbit/s\n",
        id.num_vports,
        id.num_sessions,
        f64::from(id.clock_khz) / 1000.0,
        id.uplink_gbps
    ));
    s.push_str("  register blocks:\n");
    for b in &id.blocks {
        let name = block_type::name(b.block_type).unwrap_or("?");
        s.push_str(&format!(
            "    {:#07x} {name:<15} version {}\n",
            b.offset, b.version
        ));
    }
    s.push_str("  tables:\n");
    for (t, cap) in &id.capacities {
        s.push_str(&format!("    {:<14} {cap:>9} slots\n", t.name()));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use shadownet_host::vfio::fake::{FakeFunction, FakeSysfs};

    use super::*;

    fn addr(s: &str) -> PciAddress {
        s.parse().expect("literal")
    }

    fn tree(root: &Path) -> FakeSysfs {
        let t = FakeSysfs::create(root).expect("fake sysfs");
        t.load_driver("vfio-pci").expect("driver");
        t.add(
            &FakeFunction::shadownet(addr("0000:3b:00.0"))
                .driver("vfio-pci")
                .group(10),
        )
        .expect("add");
        t.add(&FakeFunction::shadownet(addr("0000:5e:00.0")).group(13))
            .expect("add");
        t.add(
            &FakeFunction::other(addr("0000:5e:00.1"), 0x8086, 0x10fb, 0x020000)
                .driver("ixgbe")
                .group(13),
        )
        .expect("add");
        t
    }

    fn output(cmd: DeviceCommand) -> anyhow::Result<String> {
        let mut out = Vec::new();
        run(cmd, &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn list_shows_ours_and_with_all_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        tree(dir.path());
        let sysfs = dir.path().to_path_buf();
        let ours = output(DeviceCommand::List {
            all: false,
            json: false,
            sysfs: sysfs.clone(),
        })
        .expect("list");
        let lines: Vec<&str> = ours.lines().collect();
        assert!(lines[0].starts_with("ADDRESS"), "{ours}");
        assert!(
            lines[1].starts_with("0000:3b:00.0  1234:5348 020000 vfio-pci         10"),
            "{ours}"
        );
        assert!(
            lines[1].contains("128 KiB") && lines[1].ends_with("yes"),
            "{ours}"
        );
        assert!(
            lines[2].starts_with("0000:5e:00.0") && lines[2].contains(" 13+ "),
            "{ours}"
        );
        assert!(
            !ours.contains("0000:5e:00.1"),
            "only ours without --all: {ours}"
        );
        let all = output(DeviceCommand::List {
            all: true,
            json: false,
            sysfs: sysfs.clone(),
        })
        .expect("list");
        assert!(
            all.contains("0000:5e:00.1  8086:10fb 020000 ixgbe"),
            "{all}"
        );
        let json = output(DeviceCommand::List {
            all: true,
            json: true,
            sysfs,
        })
        .expect("list");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v[0]["address"], "0000:3b:00.0");
        assert_eq!(v[0]["iommu_group"], 10);
        assert_eq!(v[0]["ours"], true);
        assert_eq!(v[2]["driver"], "ixgbe");
    }

    #[test]
    fn bind_refusal_names_the_group_member() {
        let dir = tempfile::tempdir().expect("tempdir");
        tree(dir.path());
        let err = output(DeviceCommand::Bind {
            address: addr("0000:5e:00.0"),
            sysfs: dir.path().to_path_buf(),
        })
        .expect_err("refused");
        let msg = format!("{err:#}");
        assert!(msg.contains("0000:5e:00.1 (bound to ixgbe)"), "{msg}");
        let ok = output(DeviceCommand::Bind {
            address: addr("0000:3b:00.0"),
            sysfs: dir.path().to_path_buf(),
        })
        .expect("already bound");
        assert_eq!(ok.trim(), "0000:3b:00.0: nothing to do (vfio-pci)");
    }

    #[test]
    fn info_without_vfio_says_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        tree(dir.path());
        let err = output(DeviceCommand::Info {
            address: addr("0000:3b:00.0"),
            sysfs: dir.path().to_path_buf(),
        })
        .expect_err("no VFIO here");
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("opening 0000:3b:00.0 through VFIO: "),
            "{msg}"
        );
        if !Path::new("/dev/vfio/vfio").exists() {
            assert!(msg.contains("/dev/vfio/vfio does not exist"), "{msg}");
        }
    }
}
