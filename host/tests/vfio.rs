//! The VFIO backend on a fake sysfs tree and a fake ioctl layer: discovery, bind/unbind,
//! the checks `VfioDevice::open` makes (each error names what is missing), BAR0 mapping,
//! the driver identifying the simulated NIC through the VFIO code path, DMA mapping
//! bookkeeping, MSI-X eventfds and reset.

use std::{
    fs::{self, File, OpenOptions},
    net::IpAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use shadownet_host::{
    driver::{Device, DriverError, Nic},
    vfio::{
        PciAddress, ResetMethod, Sysfs, VfioDevice, VfioEnv, VfioError,
        bind::{bind_vfio, unbind},
        fake::{FakeDevice, FakeFunction, FakeSysfs, FakeVfio},
    },
};
use shadownet_hw::{BAR_SIZE, CONTRACT_VERSION, MAGIC, layout::Mac, pci, timing::Timing};
use shadownet_sim::{NicModel, bar::SharedBar};

fn addr(s: &str) -> PciAddress {
    s.parse().expect("literal address")
}

const OURS_VFIO: &str = "0000:3b:00.0";
const OURS_FREE: &str = "0000:3c:00.0";
const BRIDGE: &str = "0000:00:1c.0";
const OTHER: &str = "0000:00:03.0";
const OURS_SHARED: &str = "0000:5e:00.0";
const HOST_PEER: &str = "0000:5e:00.1";
const OURS_UIO: &str = "0000:60:00.0";
const OURS_NO_IOMMU: &str = "0000:61:00.0";
const OURS_VFIO_SHARED: &str = "0000:5f:00.0";
const HOST_PEER2: &str = "0000:5f:00.1";

/// The tree every test starts from:
/// - ours bound to vfio-pci, alone in group 10;
/// - ours bound to nothing, in group 11 with a bridge driven by pcieport (allowed);
/// - another vendor's NIC bound to i40e, group 12;
/// - ours unbound sharing group 13 with a function bound to ixgbe;
/// - ours bound to uio_pci_generic, group 15;
/// - ours without an IOMMU group;
/// - ours bound to vfio-pci sharing group 14 with a function bound to ixgbe.
fn tree(root: &Path) -> FakeSysfs {
    let t = FakeSysfs::create(root).expect("fake sysfs");
    t.load_driver("vfio-pci").expect("driver");
    for f in [
        FakeFunction::shadownet(addr(OURS_VFIO))
            .driver("vfio-pci")
            .group(10),
        FakeFunction::shadownet(addr(OURS_FREE)).group(11),
        FakeFunction::other(addr(BRIDGE), 0x8086, 0xa110, 0x06_04_00)
            .driver("pcieport")
            .group(11),
        FakeFunction::other(addr(OTHER), 0x8086, 0x1572, 0x02_00_00)
            .driver("i40e")
            .group(12),
        FakeFunction::shadownet(addr(OURS_SHARED)).group(13),
        FakeFunction::other(addr(HOST_PEER), 0x8086, 0x10fb, 0x02_00_00)
            .driver("ixgbe")
            .group(13),
        FakeFunction::shadownet(addr(OURS_UIO))
            .driver("uio_pci_generic")
            .group(15),
        FakeFunction::shadownet(addr(OURS_NO_IOMMU)),
        FakeFunction::shadownet(addr(OURS_VFIO_SHARED))
            .driver("vfio-pci")
            .group(14),
        FakeFunction::other(addr(HOST_PEER2), 0x8086, 0x10fb, 0x02_00_00)
            .driver("ixgbe")
            .group(14),
    ] {
        t.add(&f).expect("function");
    }
    t
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .expect("readable")
        .trim()
        .to_string()
}

#[test]
fn list_finds_every_function_with_ids_driver_group_and_bar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let list = t.sysfs().scan().expect("scan");
    let addrs: Vec<String> = list.iter().map(|f| f.address.to_string()).collect();
    assert_eq!(
        addrs,
        [
            OTHER,
            BRIDGE,
            OURS_VFIO,
            OURS_FREE,
            OURS_SHARED,
            HOST_PEER,
            OURS_VFIO_SHARED,
            HOST_PEER2,
            OURS_UIO,
            OURS_NO_IOMMU
        ],
        "address order"
    );
    let get = |a: &str| {
        list.iter()
            .find(|f| f.address == addr(a))
            .expect("listed")
            .clone()
    };
    let ours = get(OURS_VFIO);
    assert!(ours.ours);
    assert_eq!((ours.vendor, ours.device), (pci::VENDOR_ID, pci::DEVICE_ID));
    assert_eq!(ours.class, pci::CLASS);
    assert_eq!(ours.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(ours.iommu_group, Some(10));
    assert!(ours.group_peers.is_empty());
    assert_eq!(ours.numa_node, Some(0));
    assert_eq!(ours.bar0_size, Some(pci::BAR0_SIZE));

    let free = get(OURS_FREE);
    assert_eq!(free.driver, None);
    assert_eq!(free.group_peers, vec![addr(BRIDGE)]);

    let other = get(OTHER);
    assert!(!other.ours);
    assert_eq!(other.driver.as_deref(), Some("i40e"));
    assert_eq!(other.numa_node, None, "numa_node -1 means unknown");
    assert_eq!(other.bar0_size, Some(0x1000));
    assert!(get(BRIDGE).is_bridge());
    assert_eq!(get(OURS_NO_IOMMU).iommu_group, None);
    assert_eq!(get(OURS_SHARED).group_peers, vec![addr(HOST_PEER)]);
}

#[test]
fn list_of_a_root_without_a_pci_bus_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Sysfs::at(dir.path()).scan().expect_err("no bus");
    assert!(matches!(err, VfioError::NoPciBus { .. }), "{err}");
    assert!(err.to_string().contains("bus/pci/devices"), "{err}");
}

#[test]
fn bind_moves_an_unbound_nic_to_vfio_pci() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let sysfs = t.sysfs();
    let out = bind_vfio(&sysfs, addr(OURS_FREE)).expect("bind");
    assert!(out.changed);
    assert_eq!(out.previous_driver, None);
    assert_eq!(out.driver.as_deref(), Some("vfio-pci"));
    let dev = sysfs.device_dir(addr(OURS_FREE));
    assert_eq!(read(&dev.join("driver_override")), "vfio-pci");
    assert_eq!(read(&dir.path().join("bus/pci/drivers_probe")), OURS_FREE);
    assert_eq!(
        sysfs
            .function(addr(OURS_FREE))
            .expect("listed")
            .driver
            .as_deref(),
        Some("vfio-pci")
    );
}

#[test]
fn bind_unbinds_a_host_driver_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let out = bind_vfio(&t.sysfs(), addr(OURS_UIO)).expect("bind");
    assert_eq!(out.previous_driver.as_deref(), Some("uio_pci_generic"));
    assert_eq!(out.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(
        read(&dir.path().join("bus/pci/drivers/uio_pci_generic/unbind")),
        OURS_UIO
    );
}

#[test]
fn bind_of_an_already_bound_nic_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let out = bind_vfio(&t.sysfs(), addr(OURS_VFIO)).expect("bind");
    assert!(!out.changed);
    assert_eq!(read(&dir.path().join("bus/pci/drivers_probe")), "");
}

#[test]
fn bind_refuses_a_group_shared_with_a_host_driver_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let sysfs = t.sysfs();
    let err = bind_vfio(&sysfs, addr(OURS_SHARED)).expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, VfioError::GroupNotViable { group: 13, .. }),
        "{msg}"
    );
    assert!(msg.contains(HOST_PEER) && msg.contains("ixgbe"), "{msg}");
    // Nothing was written.
    let dev = sysfs.device_dir(addr(OURS_SHARED));
    assert_eq!(read(&dev.join("driver_override")), "(null)");
    assert_eq!(read(&dir.path().join("bus/pci/drivers_probe")), "");
}

#[test]
fn bind_refuses_other_devices_missing_vfio_pci_and_missing_iommu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let sysfs = t.sysfs();
    let err = bind_vfio(&sysfs, addr(OTHER)).expect_err("not ours");
    assert!(err.to_string().contains("8086:1572"), "{err}");
    assert!(err.to_string().contains("not a shadownet NIC"), "{err}");

    let err = bind_vfio(&sysfs, addr(OURS_NO_IOMMU)).expect_err("no IOMMU");
    let msg = err.to_string();
    assert!(
        msg.contains("no IOMMU group") && msg.contains("intel_iommu=on"),
        "{msg}"
    );

    let err = bind_vfio(&sysfs, addr("0000:99:00.0")).expect_err("absent");
    assert!(
        err.to_string().contains("no PCI function 0000:99:00.0"),
        "{err}"
    );

    // A tree where vfio-pci is not loaded.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let t2 = FakeSysfs::create(dir2.path()).expect("fake");
    t2.add(&FakeFunction::shadownet(addr(OURS_FREE)).group(3))
        .expect("function");
    let err = bind_vfio(&t2.sysfs(), addr(OURS_FREE)).expect_err("no vfio-pci");
    let msg = err.to_string();
    assert!(msg.contains("modprobe vfio-pci"), "{msg}");
    assert!(msg.contains("bus/pci/drivers/vfio-pci"), "{msg}");
}

#[test]
fn unbind_gives_the_nic_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let sysfs = t.sysfs();
    bind_vfio(&sysfs, addr(OURS_FREE)).expect("bind");
    let out = unbind(&sysfs, addr(OURS_FREE)).expect("unbind");
    assert!(out.changed);
    assert_eq!(out.previous_driver.as_deref(), Some("vfio-pci"));
    assert_eq!(out.driver, None);
    let dev = sysfs.device_dir(addr(OURS_FREE));
    assert_eq!(read(&dev.join("driver_override")), "(null)");
    assert_eq!(
        read(&dir.path().join("bus/pci/drivers/vfio-pci/unbind")),
        OURS_FREE
    );
    let again = unbind(&sysfs, addr(OURS_FREE)).expect("unbind");
    assert!(!again.changed);
}

/// A file of `len` zero bytes to back a fake BAR.
fn bar_file(dir: &Path, name: &str, len: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(name))
        .expect("bar file");
    f.set_len(len).expect("size");
    f
}

fn env(t: &FakeSysfs, fake: &FakeVfio, groups: &[u32]) -> VfioEnv {
    VfioEnv {
        sysfs: t.sysfs(),
        dev_vfio: t.dev_vfio(groups).expect("dev/vfio"),
        ops: Arc::new(fake.clone()),
        iova_window: 1 << 32..1 << 40,
    }
}

#[test]
fn open_says_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let fake = FakeVfio::new();
    let e = env(&t, &fake, &[10]);
    let open = |e: &VfioEnv, a: &str| VfioDevice::open_in(e, addr(a)).expect_err("must fail");

    let msg = open(&e, "0000:99:00.0").to_string();
    assert!(msg.contains("no PCI function 0000:99:00.0"), "{msg}");
    let msg = open(&e, OTHER).to_string();
    assert!(msg.contains("not a shadownet NIC"), "{msg}");
    let msg = open(&e, OURS_NO_IOMMU).to_string();
    assert!(
        msg.contains("iommu_group") && msg.contains("amd_iommu=on"),
        "{msg}"
    );
    let msg = open(&e, OURS_FREE).to_string();
    assert!(
        msg.contains("bound to no driver") && msg.contains("shadowctl device bind"),
        "{msg}"
    );
    let msg = open(&e, OURS_UIO).to_string();
    assert!(msg.contains("bound to uio_pci_generic"), "{msg}");
    let err = open(&e, OURS_VFIO_SHARED);
    assert!(
        matches!(err, VfioError::GroupNotViable { group: 14, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(HOST_PEER2), "{err}");

    // No /dev/vfio/vfio: vfio is not loaded.
    let no_vfio = VfioEnv {
        dev_vfio: dir.path().join("dev-without-vfio"),
        ..e.clone()
    };
    let err = open(&no_vfio, OURS_VFIO);
    assert!(matches!(err, VfioError::MissingNode { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("dev-without-vfio/vfio does not exist"),
        "{msg}"
    );
    assert!(msg.contains("modprobe vfio-pci"), "{msg}");

    // /dev/vfio/vfio but no node for the group.
    let only_container = dir.path().join("dev-without-groups");
    fs::create_dir_all(&only_container).expect("dir");
    fs::write(only_container.join("vfio"), "").expect("node");
    let e_no_group = VfioEnv {
        dev_vfio: only_container,
        ..e.clone()
    };
    let msg = open(&e_no_group, OURS_VFIO).to_string();
    assert!(
        msg.contains("dev-without-groups/10 does not exist") && msg.contains("IOMMU group 10"),
        "{msg}"
    );

    // Every check passed but the fake kernel has no such device.
    let msg = open(&e, OURS_VFIO).to_string();
    assert!(msg.contains("VFIO_GROUP_GET_DEVICE_FD"), "{msg}");
}

#[test]
fn open_on_this_machine_names_what_is_missing() {
    // The real /sys and /dev/vfio: an address that does not exist anywhere.
    let err = VfioDevice::open(addr("ffff:ff:1f.7")).expect_err("no such device");
    let msg = err.to_string();
    match err {
        VfioError::NoSuchDevice { path, .. } => {
            assert_eq!(path, Path::new("/sys/bus/pci/devices/ffff:ff:1f.7"));
            assert!(msg.contains("no PCI function ffff:ff:1f.7"), "{msg}");
        }
        VfioError::NoPciBus { .. } => assert!(msg.contains("/sys/bus/pci/devices"), "{msg}"),
        other => panic!("unexpected: {other}"),
    }
    // A NIC bound to vfio-pci in a fake sysfs, with this machine's /dev/vfio: where VFIO is
    // not loaded (as on the development machine) the error names /dev/vfio/vfio.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let system = VfioEnv {
        sysfs: t.sysfs(),
        ..VfioEnv::system()
    };
    let err = VfioDevice::open_in(&system, addr(OURS_VFIO)).expect_err("no VFIO device");
    if !Path::new("/dev/vfio/vfio").exists() {
        let msg = err.to_string();
        assert!(msg.contains("/dev/vfio/vfio does not exist"), "{msg}");
        assert!(msg.contains("modprobe vfio-pci"), "{msg}");
    }
}

#[test]
fn bar0_is_the_region_of_the_device_fd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let fake = FakeVfio::new();
    // BAR0 at a page-aligned offset in the device fd, as VFIO places regions.
    let offset = 0x10_0000;
    let file = bar_file(dir.path(), "fd", offset + BAR_SIZE as u64);
    // ID.MAGIC is at BAR offset 0xC.
    std::os::unix::fs::FileExt::write_all_at(&file, &MAGIC.to_le_bytes(), offset + 0xC)
        .expect("seed magic");
    fake.add_device(
        addr(OURS_VFIO),
        FakeDevice {
            bar0_offset: offset,
            ..FakeDevice::new(file, BAR_SIZE as u64)
        },
    );
    let dev = VfioDevice::open_in(&env(&t, &fake, &[10]), addr(OURS_VFIO)).expect("opens");
    assert_eq!(fake.opens(addr(OURS_VFIO)), (1, vec![10]));
    assert_eq!(dev.bar0_len(), BAR_SIZE);
    assert_eq!(dev.name(), OURS_VFIO);
    assert_eq!(dev.regs().id().magic().read().bits(), MAGIC);
    // A write through the register view lands in the file at the region offset.
    dev.regs().tbl_cmd().key(0).write(|w| w.set(0xdead_beef));
    let mut word = [0u8; 4];
    std::os::unix::fs::FileExt::read_exact_at(
        &File::open(dir.path().join("fd")).expect("reopen"),
        &mut word,
        offset + 0x1040,
    )
    .expect("read back");
    assert_eq!(u32::from_le_bytes(word), 0xdead_beef);

    // Without the rest of the ID block the driver refuses it, naming the PCI address.
    let err = Nic::open(dev).err().expect("not a complete NIC");
    assert!(
        matches!(
            err,
            DriverError::UnsupportedVersion { .. }
                | DriverError::BadChain { .. }
                | DriverError::NotReady { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(OURS_VFIO), "{err}");
}

#[test]
fn bar0_that_cannot_carry_the_register_map_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let cases: [(FakeDevice, &str); 3] = [
        (
            FakeDevice::new(bar_file(dir.path(), "a", 0x1000), 0x1000),
            "needs",
        ),
        (
            FakeDevice {
                bar0_mmap: false,
                ..FakeDevice::new(bar_file(dir.path(), "b", BAR_SIZE as u64), BAR_SIZE as u64)
            },
            "mappable",
        ),
        (
            FakeDevice {
                bar0_sparse: Some(vec![(0, 0x1000), (0x3000, 0x1d000)]),
                ..FakeDevice::new(bar_file(dir.path(), "c", BAR_SIZE as u64), BAR_SIZE as u64)
            },
            "MSI-X table must not sit in BAR0",
        ),
    ];
    for (device, why) in cases {
        let fake = FakeVfio::new();
        fake.add_device(addr(OURS_VFIO), device);
        let err = VfioDevice::open_in(&env(&t, &fake, &[10]), addr(OURS_VFIO)).expect_err(why);
        assert!(err.to_string().contains(why), "{err}");
        assert!(err.to_string().contains("region 0"), "{err}");
    }
}

/// The simulated NIC running on its own thread, as hardware would, on a BAR file that the
/// fake VFIO device fd maps.
struct RunningModel {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RunningModel {
    fn start(bar_path: &Path) -> RunningModel {
        let bar = SharedBar::file(bar_path).expect("shared BAR file");
        let mut model = NicModel::with_bar(Timing::DEFAULT, bar).expect("model");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if !model.service() {
                    thread::yield_now();
                }
            }
        });
        RunningModel {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RunningModel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn the_driver_identifies_the_simulated_nic_through_vfio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let bar_path = dir.path().join("bar0");
    let _model = RunningModel::start(&bar_path);
    let fake = FakeVfio::new();
    let fd = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&bar_path)
        .expect("BAR file");
    fake.add_device(addr(OURS_VFIO), FakeDevice::new(fd, BAR_SIZE as u64));
    let dev = VfioDevice::open_in(&env(&t, &fake, &[10]), addr(OURS_VFIO)).expect("opens");
    let mut nic = Nic::open(dev).expect("the driver opens the NIC through VFIO");
    let id = nic.identify();
    assert_eq!(id.version, CONTRACT_VERSION);
    assert!(id.simulated());
    assert!(!id.blocks.is_empty());
    // A command round trip: a map entry written and read back through the BAR.
    let key = shadownet_hw::layout::map::MapKey {
        vni: 5001,
        ip: "192.168.1.7".parse::<IpAddr>().expect("literal"),
    };
    let value = shadownet_hw::layout::map::MapValue {
        substrate_ip: "10.0.0.2".parse::<IpAddr>().expect("literal"),
        substrate_mac: Mac([2, 0, 0, 0, 0, 2]),
        local_vport: None,
        shadow: false,
    };
    nic.write_map(&key, &value).expect("map write");
    assert_eq!(nic.lookup_map(&key).expect("lookup"), Some(value));
    // (No NIC reset here: the model clears its gigabyte-scale table memory on reset, which
    // under a loaded test run can outlast the driver's 2 s command timeout.)
    assert!(nic.delete_map(&key).expect("delete"));
    assert_eq!(nic.lookup_map(&key).expect("lookup"), None);
}

fn opened(dir: &Path, fake: &FakeVfio, window: std::ops::Range<u64>) -> VfioDevice {
    let t = tree(dir);
    fake.add_device(
        addr(OURS_VFIO),
        FakeDevice::new(bar_file(dir, "bar", BAR_SIZE as u64), BAR_SIZE as u64),
    );
    let e = VfioEnv {
        iova_window: window,
        ..env(&t, fake, &[10])
    };
    VfioDevice::open_in(&e, addr(OURS_VFIO)).expect("opens")
}

#[test]
fn dma_regions_are_mapped_unmapped_and_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeVfio::new();
    let a = addr(OURS_VFIO);
    let base = 0x1_0000_0000;
    let dev = opened(dir.path(), &fake, base..base + 4 * 4096);

    let r1 = dev.dma_alloc(5000).expect("two pages");
    assert_eq!((r1.iova(), r1.len()), (base, 8192));
    assert_eq!(fake.dma_mappings(a), vec![(base, 8192)]);
    r1.write_u32(8188, 0x1234_5678).expect("last word");
    assert_eq!(r1.read_u32(8188).expect("read"), 0x1234_5678);
    r1.write(100, b"shadow").expect("bytes");
    let mut back = [0u8; 6];
    r1.read(100, &mut back).expect("bytes");
    assert_eq!(&back, b"shadow");
    let err = r1.read_u32(8190).expect_err("misaligned");
    assert!(err.to_string().contains("outside"), "{err}");
    assert!(r1.write(8190, &[0; 4]).is_err(), "past the end");

    let r2 = dev.dma_alloc(4096).expect("third page");
    assert_eq!(r2.iova(), base + 8192);
    let err = dev.dma_alloc(8192).expect_err("only one page left");
    let msg = err.to_string();
    assert!(matches!(err, VfioError::IovaExhausted { .. }), "{msg}");
    assert!(msg.contains("largest free range 0x1000"), "{msg}");
    assert_eq!(
        fake.dma_mappings(a).len(),
        2,
        "a failed allocation maps nothing"
    );

    drop(r1);
    assert_eq!(fake.dma_mappings(a), vec![(base + 8192, 4096)]);
    let r3 = dev.dma_alloc(8192).expect("the freed range is reused");
    assert_eq!(r3.iova(), base);
    drop((r2, r3));
    assert!(fake.dma_mappings(a).is_empty());

    let err = dev.dma_alloc(0).expect_err("empty");
    assert!(err.to_string().contains("size must be above 0"), "{err}");
}

#[test]
fn the_driver_gets_ring_memory_mapped_for_the_iommu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeVfio::new();
    let a = addr(OURS_VFIO);
    let base = 0x2_0000_0000;
    let dev = opened(dir.path(), &fake, base..base + 4 * 4096);
    // What `Nic::enable_cmd_ring` / `enable_telemetry` ask for: buffers behind the IOMMU.
    let ring = Device::alloc_dma(&dev, 16 * 128).expect("a ring's memory");
    assert_eq!(ring.iova(), base);
    assert_eq!(ring.len(), 4096, "whole pages");
    assert_eq!(fake.dma_mappings(a), vec![(base, 4096)]);
    assert_eq!(ring.read_u32(0), Some(0), "zeroed");
    ring.write_words(8, &[1, 2, 3]).expect("in range");
    assert_eq!(ring.read_u32(12), Some(2));
    assert_eq!(ring.read_u32(4096), None, "past the end");
    assert_eq!(ring.read_u32(2), None, "misaligned");
    let err = match Device::alloc_dma(&dev, 4 * 4096) {
        Ok(_) => panic!("only three pages are left"),
        Err(e) => e,
    };
    assert!(matches!(err, DriverError::VfioDma { .. }), "{err}");
    assert!(err.to_string().contains("IOVA space exhausted"), "{err}");
    drop(ring);
    assert!(fake.dma_mappings(a).is_empty(), "unmapped with the buffer");
}

#[test]
fn msix_vectors_are_wired_to_eventfds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeVfio::new();
    let a = addr(OURS_VFIO);
    let dev = opened(dir.path(), &fake, 1 << 32..1 << 40);
    let vectors = dev.enable_msix(4).expect("four vectors");
    assert_eq!(vectors.len(), 4);
    assert_eq!(fake.msix_enabled(a), 4);
    fake.fire_msix(a, 2).expect("fire");
    fake.fire_msix(a, 2).expect("fire");
    assert_eq!(vectors.take(2).expect("read"), 2);
    assert_eq!(vectors.take(2).expect("read"), 0);
    assert_eq!(vectors.take(1).expect("read"), 0);
    assert!(vectors.take(4).is_err());
    drop(vectors);
    assert_eq!(fake.msix_enabled(a), 0, "MSI-X disabled on drop");

    let err = dev
        .enable_msix(u32::from(pci::MSIX_VECTORS) + 1)
        .err()
        .expect("too many");
    assert!(
        err.to_string()
            .contains("17 MSI-X vectors asked for, the function has 16"),
        "{err}"
    );
}

#[test]
fn reset_uses_vfio_else_sysfs_else_says_it_cannot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeVfio::new();
    let a = addr(OURS_VFIO);
    let dev = opened(dir.path(), &fake, 1 << 32..1 << 40);
    assert_eq!(dev.reset().expect("reset"), ResetMethod::Vfio);
    assert_eq!(fake.resets(a), 1);

    let dir = tempfile::tempdir().expect("tempdir");
    let t = tree(dir.path());
    let no_vfio_reset = FakeVfio::new();
    no_vfio_reset.add_device(
        a,
        FakeDevice {
            vfio_reset: false,
            ..FakeDevice::new(
                bar_file(dir.path(), "bar2", BAR_SIZE as u64),
                BAR_SIZE as u64,
            )
        },
    );
    let dev = VfioDevice::open_in(&env(&t, &no_vfio_reset, &[10]), a).expect("opens");
    assert_eq!(dev.reset().expect("reset"), ResetMethod::SysfsReset);
    assert_eq!(read(&t.sysfs().device_dir(a).join("reset")), "1");

    fs::remove_file(t.sysfs().device_dir(a).join("reset")).expect("rm");
    let err = dev.reset().expect_err("no method");
    assert!(err.to_string().contains("cannot be reset"), "{err}");
}
