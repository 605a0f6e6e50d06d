use super::*;
use crate::model::{
    NextHop, Route, RuleAction, RuleDirection, ShadowState, Subnet,
    fixtures::{mirror_rule, node, rule, shop, shop_shadow},
};

fn one(changes: &[Change]) -> &Change {
    assert_eq!(changes.len(), 1, "{changes:#?}");
    &changes[0]
}

/// `diff(b, a)` is `diff(a, b)` with added and removed swapped and before/after swapped.
#[track_caller]
fn antisymmetric(forward: &[Change], backward: &[Change]) {
    assert_eq!(forward.len(), backward.len());
    for c in forward {
        let op = match c.op {
            ChangeOp::Added => ChangeOp::Removed,
            ChangeOp::Removed => ChangeOp::Added,
            ChangeOp::Changed => ChangeOp::Changed,
        };
        assert!(
            backward.iter().any(|r| r.op == op
                && r.path == c.path
                && r.what == c.what
                && r.before == c.after
                && r.after == c.before
                && r.fields == c.fields),
            "no inverse of {c:#?} in {backward:#?}"
        );
    }
}

#[track_caller]
fn network(change: impl FnOnce(&mut Network)) -> (Vec<Change>, Vec<Change>) {
    let a = shop();
    let mut b = shop();
    change(&mut b);
    let forward = diff_networks(&a, &b);
    let backward = diff_networks(&b, &a);
    antisymmetric(&forward, &backward);
    (forward, backward)
}

#[test]
fn identical_versions_have_no_changes() {
    assert!(diff_networks(&shop(), &shop()).is_empty());
    assert!(diff_shadows(&shop_shadow(), &shop_shadow()).is_empty());
    // Reordering rules or nodes is not a change.
    let mut b = shop();
    b.security_groups[0].rules.reverse();
    b.nodes.reverse();
    assert!(diff_networks(&shop(), &b).is_empty());
}

#[test]
fn nodes() {
    let (f, b) = network(|n| {
        n.nodes.push(node(
            "db2",
            "192.168.10.22",
            "02:00:00:00:10:22",
            "10.0.0.2",
            "02:00:00:00:00:02",
            None,
        ))
    });
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.what.as_str()),
        (ChangeOp::Added, "nodes/db2", "node")
    );
    assert_eq!(
        c.after.as_ref().and_then(|v| v.get("ip")),
        Some(&serde_json::json!("192.168.10.22"))
    );
    assert_eq!(one(&b).op, ChangeOp::Removed);
    let (f, _) = network(|n| {
        n.nodes[2].host = "10.0.0.4".into();
        n.nodes[2].definition.image = "postgres:16".into();
    });
    let c = one(&f);
    assert_eq!((c.op, c.path.as_str()), (ChangeOp::Changed, "nodes/db1"));
    assert_eq!(c.fields, vec!["definition", "host"]);
}

#[test]
fn security_rules() {
    // A new rule.
    let (f, _) = network(|n| {
        n.security_groups[0].rules.push(rule(
            RuleDirection::ToNode,
            "tcp",
            None,
            "443",
            RuleAction::Allow,
            100,
        ))
    });
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.what.as_str()),
        (
            ChangeOp::Added,
            "security_groups/default/rules/2",
            "security rule"
        )
    );
    // Only the verdict and priority: the same rule, changed.
    let (f, _) = network(|n| {
        n.security_groups[0].rules[0].action = RuleAction::Allow;
        n.security_groups[0].rules[0].priority = 50;
    });
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str()),
        (ChangeOp::Changed, "security_groups/default/rules/0")
    );
    assert_eq!(c.fields, vec!["action", "priority"]);
    // What it matches: another rule.
    let (f, _) = network(|n| n.security_groups[0].rules[0].ports = Some("2222".into()));
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f.iter()
            .any(|c| c.op == ChangeOp::Removed && c.path == "security_groups/default/rules/0")
    );
    assert!(
        f.iter()
            .any(|c| c.op == ChangeOp::Added && c.path == "security_groups/default/rules/0")
    );
    // A whole group.
    let (f, _) = network(|n| n.security_groups[0].name = "web".into());
    assert_eq!(f.len(), 2);
    assert!(f.iter().any(|c| c.op == ChangeOp::Removed
        && c.path == "security_groups/default"
        && c.what == "security group"));
}

#[test]
fn routes_subnets_and_services() {
    let (f, _) = network(|n| {
        n.route_tables[0].routes.push(Route {
            prefix: "10.0.0.0/8".into(),
            next_hop: NextHop::Drop,
        })
    });
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.what.as_str()),
        (
            ChangeOp::Added,
            "route_tables/main/routes/10.0.0.0/8",
            "route"
        )
    );
    let (f, _) = network(|n| n.route_tables[0].routes[0].next_hop = NextHop::Drop);
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str()),
        (ChangeOp::Changed, "route_tables/main/routes/0.0.0.0/0")
    );
    assert_eq!(c.fields, vec!["next_hop"]);
    let (f, _) = network(|n| {
        n.subnets.push(Subnet {
            name: "db".into(),
            prefix: "192.168.11.0/24".into(),
            gateway: None,
            route_table: None,
        })
    });
    assert_eq!(
        (one(&f).op, one(&f).path.as_str(), one(&f).what.as_str()),
        (ChangeOp::Added, "subnets/db", "subnet")
    );
    let (f, _) = network(|n| n.subnets[0].gateway = None);
    assert_eq!(one(&f).fields, vec!["gateway"]);
    let (f, _) = network(|n| n.services.dns.servers.push("192.168.10.3".into()));
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.what.as_str()),
        (ChangeOp::Changed, "services/dns", "setting")
    );
    assert_eq!(c.fields, vec!["servers"]);
    let (f, _) = network(|n| n.services.dhcp = None);
    assert_eq!(
        (one(&f).op, one(&f).path.as_str()),
        (ChangeOp::Removed, "services/dhcp")
    );
    let (f, _) = network(|n| n.vni = 5002);
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.before.clone(), c.after.clone()),
        (
            ChangeOp::Changed,
            "vni",
            Some(5001.into()),
            Some(5002.into())
        )
    );
    let (f, _) = network(|n| n.prefixes.push("fd00:10::/64".into()));
    assert_eq!(
        (one(&f).op, one(&f).path.as_str()),
        (ChangeOp::Added, "prefixes/fd00:10::/64")
    );
}

#[test]
fn shadows() {
    let check = |change: &dyn Fn(&mut Shadow)| {
        let a = shop_shadow();
        let mut b = shop_shadow();
        change(&mut b);
        let f = diff_shadows(&a, &b);
        antisymmetric(&f, &diff_shadows(&b, &a));
        f
    };
    let f = check(&|s| s.spec.policy.rules.push(mirror_rule("db1")));
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.what.as_str()),
        (ChangeOp::Added, "policy/rules/3", "mirror rule")
    );
    let f = check(&|s| {
        s.spec.policy.rules.remove(1);
    });
    assert_eq!(
        (one(&f).op, one(&f).path.as_str()),
        (ChangeOp::Removed, "policy/rules/1")
    );
    let f = check(&|s| {
        s.spec.policy.rules[2].sample = 10;
        s.spec.policy.rules[2].truncate = None;
    });
    assert_eq!(one(&f).fields, vec!["sample", "truncate"]);
    let f = check(&|s| {
        s.spec.capacity.mbps = 5_000;
        s.spec.capacity.sample = 4;
    });
    let c = one(&f);
    assert_eq!(
        (c.op, c.path.as_str(), c.what.as_str()),
        (ChangeOp::Changed, "capacity", "capacity")
    );
    assert_eq!(c.fields, vec!["mbps", "sample"]);
    let f = check(&|s| s.replicas[0].host = "10.0.0.4".into());
    assert_eq!(
        (one(&f).path.as_str(), one(&f).fields.clone()),
        ("replicas/db1", vec!["host".to_string()])
    );
    let f = check(&|s| {
        s.state = ShadowState::Expired;
        s.spec.ttl_s = 60;
    });
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|c| c.what == "setting"));
    let f = check(&|s| s.spec.exclude_nodes.clear());
    assert_eq!(
        (one(&f).op, one(&f).path.as_str()),
        (ChangeOp::Removed, "exclude_nodes/web1")
    );
}
