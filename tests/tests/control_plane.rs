//! The control plane end to end over its HTTP API, on the simulated NIC: network and shadow
//! lifecycle with traffic checked in the sim's output captures, versions, diffs and rollback,
//! quotas, idempotency, tenant isolation, and every hostile request answered with a
//! problem+json 4xx that changes nothing.

use serde_json::{Value, json};
use shadownet_tests::{
    daemon::{TestDaemon, frames, raw, status_of, two_tier},
    decode::try_decode,
    examples,
};

fn shadow_spec(network: &str, ttl_s: u64) -> Value {
    json!({
        "name": "shop-shadow",
        "network": network,
        "ttl_s": ttl_s,
        "collector": {"ip": "10.0.0.50", "mac": "02:00:00:00:00:50"},
        "policy": {"rules": [
            {"node": "web1", "direction": "both"},
            {"node": "web1", "protocol": "udp", "dst_ports": "53", "action": "skip", "priority": 200}
        ]},
        "capacity": {"mbps": 5000, "burst_bytes": 262144, "sample": 1}
    })
}

fn occupancy(d: &TestDaemon, table: &str) -> u64 {
    let nic = d.admin().get("/v1/nic").expect("nic status");
    nic["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|x| x["table"] == table))
        .and_then(|x| x["occupancy"].as_u64())
        .unwrap_or_else(|| panic!("no table {table} in {nic}"))
}

fn drift_is_empty(d: &TestDaemon) -> bool {
    let v = d.admin().get("/v1/nic/drift").expect("drift");
    v.get("empty").and_then(Value::as_bool).unwrap_or_else(|| {
        // Whatever shape the report has, an empty one has no entries in any list.
        fn has_entries(v: &Value) -> bool {
            match v {
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => o.values().any(has_entries),
                _ => false,
            }
        }
        !has_entries(&v)
    })
}

/// Copies of web1's traffic in the uplink capture of a run, by destination substrate address.
fn copies_in(report: &Value, shadow_vni: u32) -> Vec<(String, u32)> {
    let uplink = report["outputs"]
        .as_array()
        .and_then(|o| {
            o.iter()
                .find(|p| p["port"].as_str().is_some_and(|s| s.starts_with("uplink")))
        })
        .unwrap_or_else(|| panic!("no uplink output in {report}"));
    frames(std::path::Path::new(uplink["path"].as_str().expect("path")))
        .iter()
        .filter_map(|f| try_decode(f))
        .filter(|t| t.vni == shadow_vni)
        .map(|t| {
            (
                t.dst.to_string(),
                t.shadow.map(|s| s.session as u32).unwrap_or(u32::MAX),
            )
        })
        .collect()
}

#[test]
fn a_shadow_lives_mirrors_per_policy_and_leaves_the_tables_empty() {
    let d = TestDaemon::start("cp-lifecycle");
    let token = d.tenant("acme", json!({}));
    let acme = d.client(&token);
    let net = acme
        .send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("network created");
    assert_eq!(net["version"], 1);
    // web1 and web2 run on this NIC and were given VFs.
    let vfs: Vec<Option<u64>> = net["object"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["vf"].as_u64())
        .collect();
    assert_eq!(vfs, vec![Some(0), Some(1), None]);
    let map_before = occupancy(&d, "map");
    let shadow_map_before = occupancy(&d, "shadow_map");
    assert_eq!(shadow_map_before, 0);

    let shadow = acme
        .send("POST", "/v1/shadows", &shadow_spec("shop", 600), &[])
        .expect("shadow created");
    let vni = shadow["object"]["vni"].as_u64().expect("vni") as u32;
    let session = shadow["object"]["session"].as_u64().expect("session") as u32;
    assert_eq!(shadow["object"]["network_version"], 1);
    assert_eq!(shadow["object"]["state"], "active");
    assert_eq!(
        shadow["object"]["replicas"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(
        occupancy(&d, "shadow_map") >= 3,
        "replicas are in the shadow map"
    );

    // web1's traffic: copies go into the shadow VNI, to the replica of each destination, and
    // DNS is carved out by the skip rule.
    let capture = d.data.join("web1.pcap");
    examples::write(&capture, &examples::web1()).expect("capture written");
    let bytes = std::fs::read(&capture).expect("capture");
    let report = d
        .admin()
        .send_bytes(
            "/v1/sim/inject?port=web1",
            "application/vnd.tcpdump.pcap",
            &bytes,
        )
        .expect("injected");
    let copies = copies_in(&report, vni);
    assert!(!copies.is_empty(), "web1's traffic was mirrored: {report}");
    assert!(
        copies.iter().all(|(_, s)| *s == session),
        "Geneve metadata names the session"
    );
    // db1 runs on 10.0.0.2, so its replica does too: copies of web1 → db1 go there.
    assert!(
        copies.iter().any(|(dst, _)| dst == "10.0.0.2"),
        "{copies:?}"
    );
    let dns = examples::web1()
        .iter()
        .filter(|(_, f)| f.len() > 37 && f[23] == 17 && u16::from_be_bytes([f[36], f[37]]) == 53)
        .count();
    assert!(dns > 0);
    let web1_frames = examples::web1().len();
    assert!(
        copies.len() <= web1_frames - dns,
        "DNS is not mirrored: {} copies of {web1_frames} frames with {dns} DNS",
        copies.len()
    );

    // The TTL runs out: the timer tears the shadow down and the tables are read back empty.
    d.advance_ms(599_000);
    assert!(d.expire().is_empty(), "not yet");
    d.advance_ms(2_000);
    assert_eq!(d.expire(), vec!["shop-shadow".to_string()]);
    let e = acme.get("/v1/shadows/shop-shadow").expect_err("gone");
    assert_eq!(status_of(&e), 404);
    assert_eq!(occupancy(&d, "shadow_map"), 0);
    assert_eq!(occupancy(&d, "map"), map_before, "replica entries removed");
    assert!(drift_is_empty(&d));
    let again = d
        .admin()
        .send_bytes(
            "/v1/sim/inject?port=web1",
            "application/vnd.tcpdump.pcap",
            &bytes,
        )
        .expect("injected again");
    assert!(copies_in(&again, vni).is_empty(), "no copies after expiry");
    // The audit log tells the story.
    let audit = acme.get("/v1/audit").expect("audit");
    let actions: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for a in [
        "network.create",
        "shadow.create",
        "shadow.expired",
        "shadow.purge",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[test]
fn versions_diff_and_rollback() {
    let d = TestDaemon::start("cp-versions");
    let token = d.tenant("acme", json!({}));
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("v1");
    let map_v1 = occupancy(&d, "map");
    let acl_v1 = occupancy(&d, "acl");
    let v2 = c
        .send(
            "POST",
            "/v1/networks/shop/nodes",
            &json!({"name": "cache1", "ip": "192.168.10.31", "mac": "02:00:00:00:10:31",
                     "host": "10.0.0.4", "host_mac": "02:00:00:00:00:04"}),
            &[],
        )
        .expect("v2");
    assert_eq!(v2["version"], 2);
    assert_eq!(occupancy(&d, "map"), map_v1 + 1);
    let mut doc = v2["object"].clone();
    doc["security_groups"][0]["rules"][1]["remote"] = json!("10.8.0.0/16");
    doc["security_groups"][0]["rules"]
        .as_array_mut()
        .expect("rules")
        .push(json!({"direction": "to_node", "protocol": "tcp", "ports": "3306", "action": "deny", "priority": 90}));
    let v3 = c
        .send(
            "PUT",
            "/v1/networks/shop",
            &doc,
            &[("If-Match", "\"2\"".into())],
        )
        .expect("v3");
    assert_eq!(v3["version"], 3);
    // A stale If-Match is refused and changes nothing.
    let stale = c
        .send(
            "PUT",
            "/v1/networks/shop",
            &doc,
            &[("If-Match", "\"2\"".into())],
        )
        .expect_err("stale");
    assert_eq!(status_of(&stale), 412);

    let history = c.get("/v1/networks/shop/versions").expect("history");
    assert_eq!(history.as_array().map(Vec::len), Some(3));
    let diff = c.get("/v1/networks/shop/diff?from=1&to=3").expect("diff");
    let changes: Vec<(String, String)> = diff
        .as_array()
        .expect("changes")
        .iter()
        .map(|x| {
            (
                x["op"].as_str().unwrap_or("").into(),
                x["what"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(changes.contains(&("added".into(), "node".into())), "{diff}");
    assert!(
        changes
            .iter()
            .any(|(op, what)| what.contains("rule") && (op == "added" || op == "changed")),
        "{diff}"
    );
    let none = c.get("/v1/networks/shop/diff?from=3&to=3").expect("diff");
    assert_eq!(none, json!([]));

    let v4 = c
        .send(
            "POST",
            "/v1/networks/shop/rollback",
            &json!({"version": 1}),
            &[],
        )
        .expect("rollback");
    assert_eq!(v4["version"], 4);
    assert_eq!(
        c.get("/v1/networks/shop/diff?from=1&to=4").expect("diff"),
        json!([])
    );
    assert_eq!(occupancy(&d, "map"), map_v1, "the NIC is back at version 1");
    assert_eq!(occupancy(&d, "acl"), acl_v1);
    assert!(drift_is_empty(&d));
    let old = c.get("/v1/networks/shop?version=2").expect("version 2");
    assert_eq!(old["object"]["nodes"].as_array().map(Vec::len), Some(4));
}

#[test]
fn limits_are_enforced_with_the_limit_named() {
    let d = TestDaemon::start("cp-quota");
    let token = d.tenant(
        "small",
        json!({"max_shadows": 1, "max_mirror_mbps": 25000, "max_mirror_rules": 3, "max_shadow_lifetime_s": 3600}),
    );
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("network");
    let long = c
        .send("POST", "/v1/shadows", &shadow_spec("shop", 7200), &[])
        .expect_err("too long");
    assert_eq!(status_of(&long), 429);
    assert!(long.to_string().contains("max_shadow_lifetime_s"), "{long}");
    c.send("POST", "/v1/shadows", &shadow_spec("shop", 600), &[])
        .expect("first shadow");
    let mut second = shadow_spec("shop", 600);
    second["name"] = json!("second");
    let e = c
        .send("POST", "/v1/shadows", &second, &[])
        .expect_err("one too many");
    assert_eq!(status_of(&e), 429);
    let shown = e.to_string();
    assert!(shown.contains("max_shadows"), "{shown}");
    if let shadowctl::client::ClientError::Problem(p) = &e {
        assert_eq!(p.body["quota"]["limit"], "max_shadows");
        assert_eq!(p.body["quota"]["over_by"], 1);
        assert_eq!(p.body["quota"]["allowed"], 1);
    }
    // Raising the shadow's capacity past the bandwidth limit is refused; lowering it works.
    let up = c
        .send(
            "PUT",
            "/v1/shadows/shop-shadow/capacity",
            &json!({"mbps": 30000, "burst_bytes": 262144, "sample": 1}),
            &[],
        )
        .expect_err("over bandwidth");
    assert_eq!(status_of(&up), 429);
    assert!(up.to_string().contains("max_mirror_mbps"));
    let down = c
        .send(
            "PUT",
            "/v1/shadows/shop-shadow/capacity",
            &json!({"mbps": 5000, "burst_bytes": 262144, "sample": 4}),
            &[],
        )
        .expect("lowered");
    assert_eq!(down["version"], 2);
    // Too many mirror rules.
    let rules: Vec<Value> = (0..4)
        .map(|i| json!({"node": "web1", "dst_ports": format!("{}", 1000 + i)}))
        .collect();
    let e = c
        .send(
            "PUT",
            "/v1/shadows/shop-shadow/policy",
            &json!({"rules": rules}),
            &[],
        )
        .expect_err("too many rules");
    assert_eq!(status_of(&e), 429);
    assert!(e.to_string().contains("max_mirror_rules"));
    // Stored bytes: a limit below what one more version takes.
    let t = c.get("/v1/tenants/small").expect("usage");
    let stored = t["usage"]["stored_bytes"].as_u64().expect("stored bytes");
    let mut limits = t["tenant"]["limits"].clone();
    limits["max_stored_bytes"] = json!(stored + 100);
    d.admin()
        .send(
            "PUT",
            "/v1/tenants/small",
            &json!({"name": "small", "limits": limits}),
            &[],
        )
        .expect("limit lowered");
    let e = c
        .send(
            "POST",
            "/v1/networks/shop/nodes",
            &json!({"name": "n9", "ip": "192.168.10.99", "mac": "02:00:00:00:10:99",
                     "host": "10.0.0.9", "host_mac": "02:00:00:00:00:09"}),
            &[],
        )
        .expect_err("over stored bytes");
    assert_eq!(status_of(&e), 429);
    assert!(e.to_string().contains("max_stored_bytes"), "{e}");
    let t = c.get("/v1/tenants/small").expect("usage");
    assert_eq!(t["usage"]["shadows"], 1);
    assert_eq!(t["usage"]["mirror_mbps"], 5000);
}

#[test]
fn idempotency_keys_make_retries_safe() {
    let d = TestDaemon::start("cp-idem");
    let token = d.tenant("acme", json!({}));
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("network");
    let key = [("Idempotency-Key", "create-shadow-1".to_string())];
    let mut spec = shadow_spec("shop", 600);
    spec.as_object_mut().expect("object").remove("name");
    let a = c.send("POST", "/v1/shadows", &spec, &key).expect("first");
    let b = c.send("POST", "/v1/shadows", &spec, &key).expect("retry");
    assert_eq!(a, b, "the retry gets the first answer");
    assert_eq!(
        c.get("/v1/shadows").expect("list").as_array().map(Vec::len),
        Some(1)
    );
    spec["ttl_s"] = json!(60);
    let e = c
        .send("POST", "/v1/shadows", &spec, &key)
        .expect_err("other body");
    assert_eq!(status_of(&e), 422);
    assert_eq!(
        c.get("/v1/shadows").expect("list").as_array().map(Vec::len),
        Some(1)
    );
    // A day later the record is gone (and so is the 10-minute shadow): the key is free.
    d.advance_ms(25 * 3600 * 1000);
    assert_eq!(d.expire().len(), 1);
    c.send("POST", "/v1/shadows", &spec, &key)
        .expect("the key is free again");
}

/// What, method, path, token, content type, body, expected status.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<u8>,
    u16,
);

#[test]
fn hostile_requests_get_problems_and_change_nothing() {
    let d = TestDaemon::start("cp-hostile");
    let acme = d.tenant("acme", json!({}));
    let evil = d.tenant("evil", json!({}));
    d.client(&acme)
        .send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("network");
    let snapshot = |d: &TestDaemon| {
        (
            d.admin()
                .get("/v1/audit?limit=1000")
                .expect("audit")
                .as_array()
                .map(Vec::len),
            d.client(&acme).get("/v1/networks/shop").expect("network")["version"].clone(),
            occupancy(d, "map"),
            occupancy(d, "acl"),
        )
    };
    let before = snapshot(&d);
    let good = serde_json::to_vec(&two_tier("shop2", 5002)).expect("json");
    let mut bad_prefix = two_tier("shop2", 5002);
    bad_prefix["prefixes"] = json!(["192.168.300.0/24"]);
    let mut unknown_field = two_tier("shop2", 5002);
    unknown_field["colour"] = json!("blue");
    let mut overlapping = two_tier("shop2", 5002);
    overlapping["subnets"] = json!([{"name": "a", "prefix": "192.168.10.0/25"}, {"name": "b", "prefix": "192.168.10.64/26"}]);
    let mut dup_ip = two_tier("shop2", 5002);
    dup_ip["nodes"][1]["ip"] = json!("192.168.10.11");
    let mut vni_clash = two_tier("shop2", 5001);
    vni_clash["name"] = json!("shop2");
    let huge = vec![b' '; (1 << 20) + 10];
    let j = Some("application/json");
    let cases: Vec<Case<'_>> = vec![
        ("no token", "GET", "/v1/networks", None, None, vec![], 401),
        (
            "bad token",
            "GET",
            "/v1/networks",
            Some("not-a-token"),
            None,
            vec![],
            401,
        ),
        (
            "bad JSON",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            b"{\"name\": ".to_vec(),
            400,
        ),
        (
            "not JSON media type",
            "POST",
            "/v1/networks",
            Some(&acme),
            Some("text/plain"),
            good.clone(),
            415,
        ),
        (
            "unknown field",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            serde_json::to_vec(&unknown_field).expect("json"),
            422,
        ),
        (
            "wrong type",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            br#"{"name": "x", "vni": "five", "prefixes": []}"#.to_vec(),
            422,
        ),
        (
            "invalid prefix",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            serde_json::to_vec(&bad_prefix).expect("json"),
            422,
        ),
        (
            "overlapping subnets",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            serde_json::to_vec(&overlapping).expect("json"),
            422,
        ),
        (
            "duplicate address",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            serde_json::to_vec(&dup_ip).expect("json"),
            422,
        ),
        (
            "VNI used by another network",
            "POST",
            "/v1/networks",
            Some(&evil),
            j,
            serde_json::to_vec(&vni_clash).expect("json"),
            422,
        ),
        (
            "huge body",
            "POST",
            "/v1/networks",
            Some(&acme),
            j,
            huge,
            413,
        ),
        (
            "other tenant's network",
            "GET",
            "/v1/networks/shop",
            Some(&evil),
            None,
            vec![],
            404,
        ),
        (
            "delete other tenant's network",
            "DELETE",
            "/v1/networks/shop",
            Some(&evil),
            None,
            vec![],
            404,
        ),
        (
            "shadow of other tenant's network",
            "POST",
            "/v1/shadows",
            Some(&evil),
            j,
            serde_json::to_vec(&shadow_spec("shop", 60)).expect("json"),
            404,
        ),
        (
            "tenant on admin route",
            "POST",
            "/v1/tenants",
            Some(&acme),
            j,
            br#"{"name": "x"}"#.to_vec(),
            403,
        ),
        (
            "tenant reads NIC",
            "GET",
            "/v1/nic",
            Some(&acme),
            None,
            vec![],
            403,
        ),
        (
            "bad version number",
            "GET",
            "/v1/networks/shop?version=abc",
            Some(&acme),
            None,
            vec![],
            400,
        ),
        (
            "unknown route",
            "GET",
            "/v1/nope",
            Some(&acme),
            None,
            vec![],
            404,
        ),
        (
            "wrong method",
            "PATCH",
            "/v1/networks",
            Some(&acme),
            j,
            b"{}".to_vec(),
            405,
        ),
        (
            "rollback to a version that does not exist",
            "POST",
            "/v1/networks/shop/rollback",
            Some(&acme),
            j,
            br#"{"version": 99}"#.to_vec(),
            404,
        ),
        (
            "diff without from",
            "GET",
            "/v1/networks/shop/diff",
            Some(&acme),
            None,
            vec![],
            400,
        ),
        (
            "bad tenant name",
            "POST",
            "/v1/tenants",
            Some(&d.admin),
            j,
            br#"{"name": "Bad Name!"}"#.to_vec(),
            422,
        ),
        (
            "ttl zero",
            "POST",
            "/v1/shadows",
            Some(&acme),
            j,
            serde_json::to_vec(&shadow_spec("shop", 0)).expect("json"),
            422,
        ),
    ];
    for (what, method, path, token, ct, body, want) in cases {
        let (status, content_type, problem) = raw(&d.base, method, path, token, ct, &body);
        assert_eq!(status, want, "{what}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert_eq!(problem["status"], want, "{what}: {problem}");
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:shadownet:problem:")),
            "{what}: {problem}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}: {problem}"
        );
        assert_eq!(snapshot(&d), before, "{what} changed something");
    }
    // Validation problems name the field.
    let (_, _, p) = raw(
        &d.base,
        "POST",
        "/v1/networks",
        Some(&acme),
        j,
        &serde_json::to_vec(&bad_prefix).expect("json"),
    );
    assert!(
        p["errors"][0]["path"]
            .as_str()
            .is_some_and(|s| s.contains("prefixes")),
        "{p}"
    );
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .is_some_and(|s| s.contains("192.168.300.0/24")),
        "{p}"
    );
    // The other tenant sees none of acme's objects.
    assert_eq!(
        d.client(&evil).get("/v1/networks").expect("list"),
        json!([])
    );
}

#[test]
fn an_alert_fires_an_automation_rule_once() {
    let d = TestDaemon::start("cp-automation");
    let token = d.tenant("acme", json!({}));
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("network");
    let mut template = shadow_spec("shop", 900);
    template.as_object_mut().expect("object").remove("name");
    c.send(
        "POST",
        "/v1/automations",
        &json!({"name": "on-high", "network": "shop", "max_severity": 2, "template": template}),
        &[],
    )
    .expect("rule");
    let low = c
        .send(
            "POST",
            "/v1/alerts",
            &json!({"network": "shop", "severity": 3, "signature": "ET SCAN low"}),
            &[],
        )
        .expect("low alert");
    assert_eq!(low["shadows_created"], json!([]));
    let high = c
        .send(
            "POST",
            "/v1/alerts",
            &json!({"network": "shop", "severity": 1, "signature": "ET EXPLOIT"}),
            &[],
        )
        .expect("high alert");
    assert_eq!(high["shadows_created"].as_array().map(Vec::len), Some(1));
    let again = c
        .send(
            "POST",
            "/v1/alerts",
            &json!({"network": "shop", "severity": 1, "signature": "ET EXPLOIT"}),
            &[],
        )
        .expect("again");
    assert_eq!(again["shadows_created"], json!([]));
    assert_eq!(again["already_active"], json!(["on-high"]));
    let shadows = c.get("/v1/shadows").expect("shadows");
    assert_eq!(shadows[0]["object"]["trigger"]["by"], "automation");
    assert_eq!(shadows[0]["object"]["trigger"]["rule"], "on-high");
}

#[test]
fn a_nic_reset_and_a_restart_rebuild_the_tables_from_the_store() {
    let d = TestDaemon::start("cp-reset");
    let token = d.tenant("acme", json!({}));
    let c = d.client(&token);
    c.send("POST", "/v1/networks", &two_tier("shop", 5001), &[])
        .expect("network");
    c.send("POST", "/v1/shadows", &shadow_spec("shop", 600), &[])
        .expect("shadow");
    let tables = |d: &TestDaemon| d.admin().get("/v1/nic").expect("nic")["tables"].clone();
    let before = tables(&d);
    let r = d
        .admin()
        .send("POST", "/v1/nic/reset", &json!({}), &[])
        .expect("reset");
    assert!(r["written"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(tables(&d), before);
    assert!(drift_is_empty(&d));
    // A restart on the same store: a fresh NIC, rebuilt at start.
    let data = d.stop();
    let d = TestDaemon::start_in(data);
    assert_eq!(tables(&d), before);
    assert!(drift_is_empty(&d));
}

#[test]
fn the_openapi_document_lists_every_route() {
    let d = TestDaemon::start("cp-openapi");
    let (status, _, doc) = raw(&d.base, "GET", "/openapi.json", None, None, &[]);
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/networks",
        "/v1/networks/{network}",
        "/v1/networks/{network}/diff",
        "/v1/networks/{network}/rollback",
        "/v1/shadows",
        "/v1/shadows/{shadow}/capacity",
        "/v1/tenants",
        "/v1/alerts",
        "/v1/nic/drift",
        "/v1/analysis/suricata",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(doc["components"]["schemas"]["SuricataStatus"].is_object());
    assert!(doc["components"]["schemas"]["SuricataLoop"].is_object());
    assert!(doc["components"]["schemas"]["Network"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[test]
fn a_rate_limited_security_rule_polices_new_connections_in_the_nic() {
    use shadownet_capture::PcapWriter;
    use shadownet_host::reconcile::read_back;
    use shadownet_hw::{counters::drop_reason, drop::DropReason, layout::acl::Verdict};
    use shadownet_tests::packet::{Builder, mac};
    use shadownet_wire::tcp::flags::{ACK, PSH, SYN};

    let d = TestDaemon::start("cp-rate-limit");
    let token = d.tenant("acme", json!({}));
    let acme = d.client(&token);
    let mut net = two_tier("shop", 5001);
    // web1 and web2 may open at most 100 database connections a second (10 back to back).
    net["security_groups"][0]["rules"]
        .as_array_mut()
        .expect("rules")
        .push(
            json!({"direction": "from_node", "protocol": "tcp", "ports": "5432",
            "action": "allow", "priority": 300, "connections_only": true,
            "rate_limit": {"pps": 100, "burst": 10}}),
        );
    acme.send("POST", "/v1/networks", &net, &[])
        .expect("network");
    let tables = d
        .ctl
        .call_blocking(|c| read_back(c.nic()))
        .expect("controller")
        .expect("read back");
    let police: Vec<_> = tables
        .acl
        .values()
        .filter(|r| {
            r.action.verdict
                == Verdict::Police {
                    rate_pps: 100,
                    burst: 10,
                }
        })
        .collect();
    assert_eq!(police.len(), 2, "one per member node: {police:?}");
    assert!(police.iter().all(|r| r.matches.tcp_syn));
    // A rate limit on a protocol without connections is refused, naming the field.
    let mut bad = net.clone();
    bad["name"] = json!("shop2");
    bad["vni"] = json!(5002);
    bad["security_groups"][0]["rules"][2]["protocol"] = json!("udp");
    let err = acme
        .send("POST", "/v1/networks", &bad, &[])
        .expect_err("udp connections");
    assert_eq!(status_of(&err), 422);
    assert!(
        err.to_string()
            .contains("security_groups/0/rules/2/connections_only"),
        "{err}"
    );

    // web1 opens 50 connections a millisecond apart, each followed by a data segment.
    let capture = d.data.join("connections.pcap");
    let mut w = PcapWriter::create(&capture, 65_535).expect("pcap");
    let base = 1_700_000_000_000_000_000u64;
    for i in 0..50u64 {
        let seg = |flags| {
            Builder::tcp("192.168.10.11", "192.168.10.21", 40_000 + i as u16, 5432)
                .macs(mac(0x11), mac(0x21))
                .flags(flags)
                .build()
        };
        w.write(base + i * 1_000_000, &seg(SYN)).expect("syn");
        w.write(base + i * 1_000_000 + 500_000, &seg(ACK | PSH))
            .expect("data");
    }
    w.finish().expect("finish");
    let bytes = std::fs::read(&capture).expect("capture");
    let before = d
        .ctl
        .call_blocking(|c| c.nic().snapshot_counters())
        .expect("controller")
        .expect("counters");
    d.admin()
        .send_bytes(
            "/v1/sim/inject?port=web1",
            "application/vnd.tcpdump.pcap",
            &bytes,
        )
        .expect("injected");
    let after = d
        .ctl
        .call_blocking(|c| c.nic().snapshot_counters())
        .expect("controller")
        .expect("counters");
    let policed = after.get(drop_reason(DropReason::AclPoliced))
        - before.get(drop_reason(DropReason::AclPoliced));
    // The burst of 10, then one token every 10 ms over the 49 ms that follow: 4 more.
    assert_eq!(policed, 50 - 14, "only connection attempts are policed");
    assert_eq!(
        after.get(drop_reason(DropReason::AclDeny)),
        before.get(drop_reason(DropReason::AclDeny))
    );
}
