//! The example captures under `examples/` are what `shadownet_tests::examples` generates, and
//! the README's main job runs on them with every frame accounted for.

use shadownet_tests::{examples, repo_root};

#[test]
fn example_captures_are_current() {
    let dir = repo_root().join("examples");
    for (name, capture) in [
        ("two-tier-uplink.pcap", examples::uplink()),
        ("two-tier-web1.pcap", examples::web1()),
    ] {
        let path = dir.join(name);
        let tmp =
            std::env::temp_dir().join(format!("shadownet-example-{}-{name}", std::process::id()));
        examples::write(&tmp, &capture).expect("writing the generated capture");
        let generated = std::fs::read(&tmp).expect("reading it back");
        let _ = std::fs::remove_file(&tmp);
        if std::env::var("SHADOWNET_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).expect("writing the example");
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == generated,
            "{} is stale: regenerate with SHADOWNET_BLESS=1 cargo test -p shadownet-tests --test examples",
            path.display()
        );
    }
}
