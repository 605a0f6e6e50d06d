//! Semantic diff between two versions of a network or a shadow (R10).
//!
//! Identity: subnets, nodes, security groups, route tables, replicas and analysis nodes by
//! name; prefixes and excluded nodes by value; routes by destination prefix within their
//! table. Security rules and mirror rules have no name: they are identified by what they
//! match (direction, protocol, remote or prefixes, ports, node), so a rule whose match changes
//! shows as removed + added, while a rule whose match stays and whose verdict, priority,
//! sampling or truncation changes shows as changed with those fields. Rules are compared as
//! written (`tcp` and `6` are different text). A rule's path carries its index in the version
//! where it is (the old one for removed, the new one for added and changed).
//!
//! `diff(a, b)` and `diff(b, a)` hold the same changes with added and removed swapped and
//! `before`/`after` swapped (for changed rules the index in the path may differ).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{MirrorRule, Network, SecurityRule, Shadow};

/// What happened to an object between two versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// Only in the new version.
    Added,
    /// Only in the old version.
    Removed,
    /// In both, different.
    Changed,
}

/// One difference between two versions.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Change {
    /// Added, removed or changed.
    pub op: ChangeOp,
    /// The object: `nodes/web1`, `security_groups/web/rules/3`,
    /// `route_tables/main/routes/10.0.0.0/8`, `services/dns`, `vni`.
    pub path: String,
    /// Its kind: `node`, `security rule`, `route`, `subnet`, `mirror rule`, `setting`, ...
    pub what: String,
    /// The old value (absent for added).
    #[schema(value_type = Object)]
    pub before: Option<Value>,
    /// The new value (absent for removed).
    #[schema(value_type = Object)]
    pub after: Option<Value>,
    /// For changed objects, the fields that differ (in alphabetical order).
    pub fields: Vec<String>,
}

fn json<T: Serialize>(v: &T) -> Value {
    // The model's types serialize to JSON without fail (string keys, no non-finite floats).
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Top-level fields of two JSON objects that differ, in the object's order.
fn differing_fields(a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out: Vec<String> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            out.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
            out
        }
        _ => Vec::new(),
    }
}

#[derive(Default)]
struct Diff(Vec<Change>);

impl Diff {
    fn push(
        &mut self,
        op: ChangeOp,
        path: String,
        what: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) {
        let fields = match (&before, &after) {
            (Some(a), Some(b)) if op == ChangeOp::Changed => differing_fields(a, b),
            _ => Vec::new(),
        };
        self.0.push(Change {
            op,
            path,
            what: what.to_string(),
            before,
            after,
            fields,
        });
    }

    /// A single value: changed when it differs.
    fn setting<T: Serialize + PartialEq>(&mut self, path: &str, a: &T, b: &T) {
        if a != b {
            self.push(
                ChangeOp::Changed,
                path.to_string(),
                "setting",
                Some(json(a)),
                Some(json(b)),
            );
        }
    }

    /// An optional object.
    fn optional<T: Serialize + PartialEq>(
        &mut self,
        path: &str,
        what: &str,
        a: &Option<T>,
        b: &Option<T>,
    ) {
        match (a, b) {
            (None, None) => {}
            (Some(a), None) => self.push(
                ChangeOp::Removed,
                path.to_string(),
                what,
                Some(json(a)),
                None,
            ),
            (None, Some(b)) => {
                self.push(ChangeOp::Added, path.to_string(), what, None, Some(json(b)))
            }
            (Some(a), Some(b)) => {
                if a != b {
                    self.push(
                        ChangeOp::Changed,
                        path.to_string(),
                        what,
                        Some(json(a)),
                        Some(json(b)),
                    );
                }
            }
        }
    }

    /// Objects identified by a key: added, removed, or (same key) changed. `inner` may
    /// describe a change of a kept object in more detail instead; it returns whether it did.
    fn keyed<T: Serialize + PartialEq, K: Ord + Clone + std::fmt::Display>(
        &mut self,
        at: &str,
        what: &str,
        a: &[T],
        b: &[T],
        key: impl Fn(&T) -> K,
        mut inner: impl FnMut(&mut Diff, &str, &T, &T) -> bool,
    ) {
        let old: BTreeMap<K, &T> = a.iter().map(|x| (key(x), x)).collect();
        let new: BTreeMap<K, &T> = b.iter().map(|x| (key(x), x)).collect();
        for (k, x) in &old {
            let path = format!("{at}/{k}");
            match new.get(k) {
                None => self.push(ChangeOp::Removed, path, what, Some(json(*x)), None),
                Some(y) if x != y => {
                    if !inner(self, &path, x, y) {
                        self.push(
                            ChangeOp::Changed,
                            path,
                            what,
                            Some(json(*x)),
                            Some(json(*y)),
                        );
                    }
                }
                Some(_) => {}
            }
        }
        for (k, y) in &new {
            if !old.contains_key(k) {
                self.push(
                    ChangeOp::Added,
                    format!("{at}/{k}"),
                    what,
                    None,
                    Some(json(*y)),
                );
            }
        }
    }

    /// Unnamed rules identified by their match: pairs of equal matches are kept (changed when
    /// the rest differs), the others removed or added.
    fn rules<T: Serialize + PartialEq, K: PartialEq>(
        &mut self,
        at: &str,
        what: &str,
        a: &[T],
        b: &[T],
        key: impl Fn(&T) -> K,
    ) {
        let mut unmatched_new: Vec<usize> = (0..b.len()).collect();
        let mut removed = Vec::new();
        let mut changed = Vec::new();
        for (i, x) in a.iter().enumerate() {
            let kx = key(x);
            // An identical rule first, so reordering alone changes nothing.
            let pos = unmatched_new
                .iter()
                .position(|&j| &b[j] == x)
                .or_else(|| unmatched_new.iter().position(|&j| key(&b[j]) == kx));
            match pos {
                Some(p) => {
                    let j = unmatched_new.remove(p);
                    if &b[j] != x {
                        changed.push((i, j));
                    }
                }
                None => removed.push(i),
            }
        }
        for i in removed {
            self.push(
                ChangeOp::Removed,
                format!("{at}/{i}"),
                what,
                Some(json(&a[i])),
                None,
            );
        }
        for (i, j) in changed {
            self.push(
                ChangeOp::Changed,
                format!("{at}/{j}"),
                what,
                Some(json(&a[i])),
                Some(json(&b[j])),
            );
        }
        for j in unmatched_new {
            self.push(
                ChangeOp::Added,
                format!("{at}/{j}"),
                what,
                None,
                Some(json(&b[j])),
            );
        }
    }
}

type SecurityRuleKey = (super::RuleDirection, [Option<String>; 3]);

fn security_rule_key(r: &SecurityRule) -> SecurityRuleKey {
    (
        r.direction,
        [r.protocol.clone(), r.remote.clone(), r.ports.clone()],
    )
}

type MirrorRuleKey = (super::MirrorDirection, [Option<String>; 6]);

fn mirror_rule_key(r: &MirrorRule) -> MirrorRuleKey {
    (
        r.direction,
        [
            r.node.clone(),
            r.protocol.clone(),
            r.src.clone(),
            r.dst.clone(),
            r.src_ports.clone(),
            r.dst_ports.clone(),
        ],
    )
}

/// What changed from `old` to `new`: settings, prefixes, subnets, nodes, security groups and
/// their rules, route tables and their routes, network services.
pub fn diff_networks(old: &Network, new: &Network) -> Vec<Change> {
    let mut d = Diff::default();
    d.setting("name", &old.name, &new.name);
    d.setting("vni", &old.vni, &new.vni);
    d.setting("miss", &old.miss, &new.miss);
    d.setting(
        "default_to_node",
        &old.default_to_node,
        &new.default_to_node,
    );
    d.setting(
        "default_from_node",
        &old.default_from_node,
        &new.default_from_node,
    );
    d.keyed(
        "prefixes",
        "prefix",
        &old.prefixes,
        &new.prefixes,
        |p| p.clone(),
        |_, _, _, _| false,
    );
    d.keyed(
        "subnets",
        "subnet",
        &old.subnets,
        &new.subnets,
        |s| s.name.clone(),
        |_, _, _, _| false,
    );
    d.keyed(
        "nodes",
        "node",
        &old.nodes,
        &new.nodes,
        |n| n.name.clone(),
        |_, _, _, _| false,
    );
    d.keyed(
        "security_groups",
        "security group",
        &old.security_groups,
        &new.security_groups,
        |g| g.name.clone(),
        |d, path, a, b| {
            d.rules(
                &format!("{path}/rules"),
                "security rule",
                &a.rules,
                &b.rules,
                security_rule_key,
            );
            true
        },
    );
    d.keyed(
        "route_tables",
        "route table",
        &old.route_tables,
        &new.route_tables,
        |t| t.name.clone(),
        |d, path, a, b| {
            d.keyed(
                &format!("{path}/routes"),
                "route",
                &a.routes,
                &b.routes,
                |r| r.prefix.clone(),
                |_, _, _, _| false,
            );
            true
        },
    );
    d.optional(
        "services/dhcp",
        "setting",
        &old.services.dhcp,
        &new.services.dhcp,
    );
    if old.services.dns != new.services.dns {
        d.push(
            ChangeOp::Changed,
            "services/dns".to_string(),
            "setting",
            Some(json(&old.services.dns)),
            Some(json(&new.services.dns)),
        );
    }
    d.0
}

/// What changed from `old` to `new` of a shadow: its state and lifetime, mode, tunnel,
/// capacity, collector, replicas, analysis nodes, excluded nodes and mirror rules.
pub fn diff_shadows(old: &Shadow, new: &Shadow) -> Vec<Change> {
    let mut d = Diff::default();
    d.setting("name", &old.name, &new.name);
    d.setting("network", &old.spec.network, &new.spec.network);
    d.setting(
        "network_version",
        &old.network_version,
        &new.network_version,
    );
    d.setting("vni", &old.vni, &new.vni);
    d.setting("session", &old.session, &new.session);
    d.setting("state", &old.state, &new.state);
    d.setting("mode", &old.spec.mode, &new.spec.mode);
    d.setting("encap", &old.spec.encap, &new.spec.encap);
    d.setting("ttl_s", &old.spec.ttl_s, &new.spec.ttl_s);
    d.setting("expires_at_ms", &old.expires_at_ms, &new.expires_at_ms);
    if old.spec.capacity != new.spec.capacity {
        d.push(
            ChangeOp::Changed,
            "capacity".to_string(),
            "capacity",
            Some(json(&old.spec.capacity)),
            Some(json(&new.spec.capacity)),
        );
    }
    if old.spec.collector != new.spec.collector {
        d.push(
            ChangeOp::Changed,
            "collector".to_string(),
            "collector",
            Some(json(&old.spec.collector)),
            Some(json(&new.spec.collector)),
        );
    }
    d.keyed(
        "replicas",
        "replica",
        &old.replicas,
        &new.replicas,
        |r| r.node.clone(),
        |_, _, _, _| false,
    );
    d.keyed(
        "analysis_nodes",
        "analysis node",
        &old.spec.analysis_nodes,
        &new.spec.analysis_nodes,
        |a| a.name.clone(),
        |_, _, _, _| false,
    );
    d.keyed(
        "exclude_nodes",
        "excluded node",
        &old.spec.exclude_nodes,
        &new.spec.exclude_nodes,
        |n| n.clone(),
        |_, _, _, _| false,
    );
    d.rules(
        "policy/rules",
        "mirror rule",
        &old.spec.policy.rules,
        &new.spec.policy.rules,
        mirror_rule_key,
    );
    d.0
}

#[cfg(test)]
mod tests;
