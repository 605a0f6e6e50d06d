//! One function per route; each is documented for the OpenAPI document.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::{
    ApiState, Problem,
    extract::{Auth, JsonBody, QueryArgs, idempotency_key, if_match},
};
use crate::{
    analysis::suricata::{SuricataCounters, SuricataStatus, supervisor::ExitInfo},
    control::{
        AclEntry, Activation, AlertOutcome, Backend, Caller, CaptureSource, ClassOutcome,
        Correlation, Finding, FindingQuery, GeneratedLoop, HeavyHitter, HistoryEntry, Idempotency,
        Incident, IncidentState, IngestReport, InjectReport, LoopIngest, LoopReport, NicStatus,
        PolicyAction, PortCounters, ProductionVm, ProposeRequest, QuotaExceeded, ShadowRef,
        SignatureCount, StoredCapture, StoredLabels, SuricataLoop, SyncReport, Teardown,
        TenantView, TrialRequest, Usage, Versioned, parse_events, parse_timestamp,
    },
    model::{
        AlertReport, Automation, BlockRule, Capacity, MirrorPolicy, Mitigation, MitigationPolicy,
        MitigationState, Network, Node, Shadow, ShadowSpec, Tenant,
        diff::Change,
        mitigation::{GroupKey, MitigationMode, TrialReport, VmVolume, Volume},
        validate::FieldError,
    },
    reconcile::TableDiff,
    store::AuditRecord,
};

type ApiResult = Result<Response, Problem>;

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, Json(body)).into_response()
}

fn with_version<T: Serialize>(status: StatusCode, v: &Versioned<T>) -> Response {
    let mut r = json(status, v);
    if let Ok(h) = HeaderValue::from_str(&format!("\"{}\"", v.version)) {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

/// Answers a retried creation with its first answer, or refuses a reused key.
async fn replay<D: Backend>(
    state: &ApiState<D>,
    caller: &Caller,
    headers: &HeaderMap,
    fingerprint: &str,
) -> Result<(Option<Idempotency>, Option<Response>), Problem> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok((None, None));
    };
    let tenant = caller.tenant()?.to_string();
    let k = key.clone();
    let found = state
        .ctl
        .call(move |c| c.store().idempotent(&tenant, &k))
        .await?
        .map_err(|e| Problem::from(crate::control::ControlError::from(e)))?;
    match found {
        Some(rec) if rec.fingerprint == fingerprint => {
            let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
            let mut r = json(status, &rec.body);
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok((None, Some(r)))
        }
        Some(_) => Err(Problem::new(
            422,
            "idempotency-key-reused",
            "Idempotency key reused",
            format!("Idempotency-Key '{key}' was used for a different request"),
        )),
        None => Ok((
            Some(Idempotency {
                key,
                fingerprint: fingerprint.to_string(),
            }),
            None,
        )),
    }
}

/// Liveness.
#[utoipa::path(get, path = "/v1/health", tag = "system",
    responses((status = 200, description = "The daemon is up", body = Object)))]
pub async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// The OpenAPI document.
pub async fn openapi() -> Response {
    json(StatusCode::OK, &ApiDoc::openapi())
}

/// Unknown route.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route (the API is under /v1/; see /openapi.json)")
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
        "this route does not take that method (see /openapi.json)",
    )
}

/// A tenant and its first token.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: Versioned<Tenant>,
    /// Its bearer token: shown once, stored only as a hash.
    pub token: String,
}

/// Creates a tenant (admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = Tenant,
    responses((status = 201, body = CreatedTenant), (status = "4XX", body = Problem)))]
pub async fn create_tenant<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    body: JsonBody<Tenant>,
) -> ApiResult {
    let (tenant, token) = s
        .ctl
        .call(move |c| c.create_tenant(&caller, body.value))
        .await??;
    Ok(json(StatusCode::CREATED, &CreatedTenant { tenant, token }))
}

/// Tenants: all for the admin, one's own for a tenant.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantView>), (status = "4XX", body = Problem)))]
pub async fn list_tenants<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.list_tenants(&caller)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// A tenant, with its usage of its limits.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, body = TenantView), (status = "4XX", body = Problem)))]
pub async fn get_tenant<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.get_tenant(&caller, &name)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// Replaces a tenant's description and limits (admin).
#[utoipa::path(put, path = "/v1/tenants/{tenant}", tag = "tenants", request_body = Tenant,
    params(("tenant" = String, Path)),
    responses((status = 200, body = Versioned<Tenant>), (status = "4XX", body = Problem)))]
pub async fn update_tenant<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: JsonBody<Tenant>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.update_tenant(&caller, &name, body.value))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// A new token.
#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    /// The bearer token: shown once.
    pub token: String,
}

/// Issues another token for a tenant (admin).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 201, body = IssuedToken), (status = "4XX", body = Problem)))]
pub async fn issue_token<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let token = s.ctl.call(move |c| c.issue_token(&caller, &name)).await??;
    Ok(json(StatusCode::CREATED, &IssuedToken { token }))
}

/// Creates a production network (version 1) and programs it.
#[utoipa::path(post, path = "/v1/networks", tag = "networks", request_body = Network,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Versioned<Network>), (status = "4XX", body = Problem)))]
pub async fn create_network<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    headers: HeaderMap,
    body: JsonBody<Network>,
) -> ApiResult {
    let (idem, replayed) = replay(&s, &caller, &headers, &body.fingerprint).await?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    let (v, _) = s
        .ctl
        .call(move |c| c.create_network(&caller, body.value, idem.as_ref()))
        .await??;
    Ok(with_version(StatusCode::CREATED, &v))
}

/// The caller's networks.
#[utoipa::path(get, path = "/v1/networks", tag = "networks",
    responses((status = 200, body = [Versioned<Network>]), (status = "4XX", body = Problem)))]
pub async fn list_networks<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.list_networks(&caller)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// A network: the current version, or `?version=N`.
#[utoipa::path(get, path = "/v1/networks/{network}", tag = "networks",
    params(("network" = String, Path), ("version" = Option<u64>, Query)),
    responses((status = 200, body = Versioned<Network>), (status = "4XX", body = Problem)))]
pub async fn get_network<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let version = QueryArgs::parse(q.as_deref()).number("version")?;
    let v = s
        .ctl
        .read(move |c| c.get_network(&caller, &name, version))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Replaces a network with a new version (send `If-Match: "<version>"` to refuse the change
/// if someone else changed it first).
#[utoipa::path(put, path = "/v1/networks/{network}", tag = "networks", request_body = Network,
    params(("network" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Versioned<Network>), (status = "4XX", body = Problem)))]
pub async fn update_network<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Network>,
) -> ApiResult {
    let expect = if_match(&headers)?;
    let (v, _) = s
        .ctl
        .call(move |c| c.update_network(&caller, &name, body.value, expect, ""))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Deletes a network (refused while shadows of it are alive).
#[utoipa::path(delete, path = "/v1/networks/{network}", tag = "networks",
    params(("network" = String, Path)),
    responses((status = 200, body = SyncReport), (status = "4XX", body = Problem)))]
pub async fn delete_network<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let r = s
        .ctl
        .call(move |c| c.delete_network(&caller, &name))
        .await??;
    Ok(json(StatusCode::OK, &r))
}

/// Adds a node to a network (a new version).
#[utoipa::path(post, path = "/v1/networks/{network}/nodes", tag = "networks", request_body = Node,
    params(("network" = String, Path)),
    responses((status = 201, body = Versioned<Network>), (status = "4XX", body = Problem)))]
pub async fn add_node<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: JsonBody<Node>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| {
            let cur = c.get_network(&caller, &name, None)?;
            let mut net = cur.object;
            if net.nodes.iter().any(|n| n.name == body.value.name) {
                return Err(crate::control::ControlError::Exists {
                    kind: "node",
                    name: body.value.name,
                });
            }
            let msg = format!("node '{}' added", body.value.name);
            net.nodes.push(body.value);
            c.update_network(&caller, &name, net, Some(cur.version), &msg)
        })
        .await??;
    Ok(with_version(StatusCode::CREATED, &v.0))
}

/// Removes a node from a network (a new version).
#[utoipa::path(delete, path = "/v1/networks/{network}/nodes/{node}", tag = "networks",
    params(("network" = String, Path), ("node" = String, Path)),
    responses((status = 200, body = Versioned<Network>), (status = "4XX", body = Problem)))]
pub async fn remove_node<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path((name, node)): Path<(String, String)>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| {
            let cur = c.get_network(&caller, &name, None)?;
            let mut net = cur.object;
            let before = net.nodes.len();
            net.nodes.retain(|n| n.name != node);
            if net.nodes.len() == before {
                return Err(crate::control::ControlError::NotFound {
                    kind: "node",
                    name: node,
                });
            }
            c.update_network(
                &caller,
                &name,
                net,
                Some(cur.version),
                &format!("node '{node}' removed"),
            )
        })
        .await??;
    Ok(with_version(StatusCode::OK, &v.0))
}

/// A network's versions, oldest first.
#[utoipa::path(get, path = "/v1/networks/{network}/versions", tag = "versions",
    params(("network" = String, Path)),
    responses((status = 200, body = Vec<HistoryEntry>), (status = "4XX", body = Problem)))]
pub async fn network_history<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let v = s
        .ctl
        .read(move |c| c.network_history(&caller, &name))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

fn diff_args(q: Option<String>) -> Result<(u64, Option<u64>), Problem> {
    let args = QueryArgs::parse(q.as_deref());
    let from = args.number("from")?.ok_or_else(|| {
        Problem::bad_request("query parameter 'from' (a version number) is required")
    })?;
    Ok((from, args.number("to")?))
}

/// Semantic diff between two versions of a network (`?from=N&to=M`; `to` defaults to the
/// current version).
#[utoipa::path(get, path = "/v1/networks/{network}/diff", tag = "versions",
    params(("network" = String, Path), ("from" = u64, Query), ("to" = Option<u64>, Query)),
    responses((status = 200, body = Vec<Change>), (status = "4XX", body = Problem)))]
pub async fn network_diff<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (from, to) = diff_args(q)?;
    let v = s
        .ctl
        .call(move |c| c.diff_network(&caller, &name, from, to))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// Which version to roll back to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to re-apply.
    pub version: u64,
}

/// Re-applies an earlier version of a network as its newest version, and programs it.
#[utoipa::path(post, path = "/v1/networks/{network}/rollback", tag = "versions",
    request_body = RollbackRequest, params(("network" = String, Path)),
    responses((status = 200, body = Versioned<Network>), (status = "4XX", body = Problem)))]
pub async fn network_rollback<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: JsonBody<RollbackRequest>,
) -> ApiResult {
    let (v, _) = s
        .ctl
        .call(move |c| c.rollback_network(&caller, &name, body.value.version))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Creates a shadow of a network: captures its current version and provisions the shadow.
#[utoipa::path(post, path = "/v1/shadows", tag = "shadows", request_body = ShadowSpec,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Versioned<Shadow>), (status = "4XX", body = Problem)))]
pub async fn create_shadow<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    headers: HeaderMap,
    body: JsonBody<ShadowSpec>,
) -> ApiResult {
    let (idem, replayed) = replay(&s, &caller, &headers, &body.fingerprint).await?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    let (v, _) = s
        .ctl
        .call(move |c| c.create_shadow(&caller, body.value, idem.as_ref()))
        .await??;
    Ok(with_version(StatusCode::CREATED, &v))
}

/// The caller's shadows.
#[utoipa::path(get, path = "/v1/shadows", tag = "shadows",
    responses((status = 200, body = [Versioned<Shadow>]), (status = "4XX", body = Problem)))]
pub async fn list_shadows<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.list_shadows(&caller)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// A shadow: the current version or `?version=N`.
#[utoipa::path(get, path = "/v1/shadows/{shadow}", tag = "shadows",
    params(("shadow" = String, Path), ("version" = Option<u64>, Query)),
    responses((status = 200, body = Versioned<Shadow>), (status = "4XX", body = Problem)))]
pub async fn get_shadow<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let version = QueryArgs::parse(q.as_deref()).number("version")?;
    let v = s
        .ctl
        .read(move |c| c.get_shadow(&caller, &name, version))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Deletes a shadow now: its NIC entries are removed and read back, then everything stored
/// about it is purged.
#[utoipa::path(delete, path = "/v1/shadows/{shadow}", tag = "shadows",
    params(("shadow" = String, Path)),
    responses((status = 200, body = Teardown), (status = "4XX", body = Problem)))]
pub async fn delete_shadow<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.delete_shadow(&caller, &name))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// Marks a shadow complete: torn down like a deletion.
#[utoipa::path(post, path = "/v1/shadows/{shadow}/complete", tag = "shadows",
    params(("shadow" = String, Path)),
    responses((status = 200, body = Teardown), (status = "4XX", body = Problem)))]
pub async fn complete_shadow<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.complete_shadow(&caller, &name))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// Raises or lowers a shadow's analysis capacity (mirror bandwidth, sampling).
#[utoipa::path(put, path = "/v1/shadows/{shadow}/capacity", tag = "shadows", request_body = Capacity,
    params(("shadow" = String, Path)),
    responses((status = 200, body = Versioned<Shadow>), (status = "4XX", body = Problem)))]
pub async fn shadow_capacity<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: JsonBody<Capacity>,
) -> ApiResult {
    let (v, _) = s
        .ctl
        .call(move |c| c.set_shadow_capacity(&caller, &name, body.value))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Replaces a shadow's mirror policy.
#[utoipa::path(put, path = "/v1/shadows/{shadow}/policy", tag = "shadows", request_body = MirrorPolicy,
    params(("shadow" = String, Path)),
    responses((status = 200, body = Versioned<Shadow>), (status = "4XX", body = Problem)))]
pub async fn shadow_policy<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: JsonBody<MirrorPolicy>,
) -> ApiResult {
    let (v, _) = s
        .ctl
        .call(move |c| c.set_shadow_policy(&caller, &name, body.value))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// A shadow's versions, oldest first.
#[utoipa::path(get, path = "/v1/shadows/{shadow}/versions", tag = "versions",
    params(("shadow" = String, Path)),
    responses((status = 200, body = Vec<HistoryEntry>), (status = "4XX", body = Problem)))]
pub async fn shadow_history<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    let v = s
        .ctl
        .read(move |c| c.shadow_history(&caller, &name))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// Semantic diff between two versions of a shadow.
#[utoipa::path(get, path = "/v1/shadows/{shadow}/diff", tag = "versions",
    params(("shadow" = String, Path), ("from" = u64, Query), ("to" = Option<u64>, Query)),
    responses((status = 200, body = Vec<Change>), (status = "4XX", body = Problem)))]
pub async fn shadow_diff<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (from, to) = diff_args(q)?;
    let v = s
        .ctl
        .call(move |c| c.diff_shadow(&caller, &name, from, to))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// Re-applies an earlier version of a shadow's policy, capacity and mode.
#[utoipa::path(post, path = "/v1/shadows/{shadow}/rollback", tag = "versions",
    request_body = RollbackRequest, params(("shadow" = String, Path)),
    responses((status = 200, body = Versioned<Shadow>), (status = "4XX", body = Problem)))]
pub async fn shadow_rollback<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    body: JsonBody<RollbackRequest>,
) -> ApiResult {
    let (v, _) = s
        .ctl
        .call(move |c| c.rollback_shadow(&caller, &name, body.value.version))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Stores (creates or replaces) an automation rule.
#[utoipa::path(post, path = "/v1/automations", tag = "automation", request_body = Automation,
    responses((status = 201, body = Versioned<Automation>), (status = "4XX", body = Problem)))]
pub async fn put_automation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    body: JsonBody<Automation>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.put_automation(&caller, body.value))
        .await??;
    Ok(with_version(StatusCode::CREATED, &v))
}

/// The caller's automation rules.
#[utoipa::path(get, path = "/v1/automations", tag = "automation",
    responses((status = 200, body = [Versioned<Automation>]), (status = "4XX", body = Problem)))]
pub async fn list_automations<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.list_automations(&caller)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// Deletes an automation rule.
#[utoipa::path(delete, path = "/v1/automations/{automation}", tag = "automation",
    params(("automation" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem)))]
pub async fn delete_automation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult {
    s.ctl
        .call(move |c| c.delete_automation(&caller, &name))
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reports an alert about a network; armed automation rules may create shadows.
#[utoipa::path(post, path = "/v1/alerts", tag = "automation", request_body = AlertReport,
    responses((status = 200, body = AlertOutcome), (status = "4XX", body = Problem)))]
pub async fn report_alert<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    body: JsonBody<AlertReport>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.report_alert(&caller, body.value))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// The audit log, newest first (`?limit=N`, default 100).
#[utoipa::path(get, path = "/v1/audit", tag = "system",
    params(("limit" = Option<usize>, Query)),
    responses((status = 200, body = Vec<AuditRecord>), (status = "4XX", body = Problem)))]
pub async fn audit<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let limit = QueryArgs::parse(q.as_deref())
        .number::<usize>("limit")?
        .unwrap_or(100)
        .min(10_000);
    let v = s.ctl.read(move |c| c.audit_log(&caller, limit)).await??;
    Ok(json(StatusCode::OK, &v))
}

fn admin(caller: &Caller) -> Result<(), Problem> {
    if caller.admin {
        Ok(())
    } else {
        Err(Problem::new(
            403,
            "forbidden",
            "Forbidden",
            "this call needs the admin token",
        ))
    }
}

/// The NIC: identity, table capacity and occupancy (admin).
#[utoipa::path(get, path = "/v1/nic", tag = "nic",
    responses((status = 200, body = NicStatus), (status = "4XX", body = Problem)))]
pub async fn nic_status<D: Backend>(State(s): State<ApiState<D>>, Auth(caller): Auth) -> ApiResult {
    admin(&caller)?;
    let v = s.ctl.call(|c| c.nic_status()).await??;
    Ok(json(StatusCode::OK, &v))
}

/// Entries on the NIC that differ from the desired state (admin).
#[utoipa::path(get, path = "/v1/nic/drift", tag = "nic",
    responses((status = 200, body = Object), (status = "4XX", body = Problem)))]
pub async fn nic_drift<D: Backend>(State(s): State<ApiState<D>>, Auth(caller): Auth) -> ApiResult {
    admin(&caller)?;
    let v: TableDiff = s.ctl.call(|c| c.drift()).await??;
    Ok(json(StatusCode::OK, &v))
}

/// Reprograms the NIC from the store (admin).
#[utoipa::path(post, path = "/v1/nic/resync", tag = "nic",
    responses((status = 200, body = SyncReport), (status = "4XX", body = Problem)))]
pub async fn nic_resync<D: Backend>(State(s): State<ApiState<D>>, Auth(caller): Auth) -> ApiResult {
    admin(&caller)?;
    let (_, r) = s.ctl.call(|c| c.resync()).await??;
    Ok(json(StatusCode::OK, &r))
}

/// Resets the NIC and rebuilds its tables from the store (admin).
#[utoipa::path(post, path = "/v1/nic/reset", tag = "nic",
    responses((status = 200, body = SyncReport), (status = "4XX", body = Problem)))]
pub async fn nic_reset<D: Backend>(State(s): State<ApiState<D>>, Auth(caller): Auth) -> ApiResult {
    admin(&caller)?;
    let r = s.ctl.call(|c| c.reset_nic()).await??;
    Ok(json(StatusCode::OK, &r))
}

/// Feeds a capture (pcap or pcapng body) into a port of the simulated NIC (`?port=uplink|pf|vfN|<node>`,
/// `?pace=line|timestamps`) and writes what every port transmitted to captures on the daemon's
/// disk (admin; simulator only).
#[utoipa::path(post, path = "/v1/sim/inject", tag = "nic",
    params(("port" = Option<String>, Query), ("pace" = Option<String>, Query)),
    request_body(content = Vec<u8>, content_type = "application/vnd.tcpdump.pcap"),
    responses((status = 200, body = InjectReport), (status = "4XX", body = Problem)))]
pub async fn sim_inject<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    admin(&caller)?;
    let args = QueryArgs::parse(q.as_deref());
    let port = args.text("port").unwrap_or("uplink").to_string();
    let line_rate = match args.text("pace").unwrap_or("timestamps") {
        "timestamps" => false,
        "line" => true,
        other => {
            return Err(Problem::bad_request(format!(
                "query parameter 'pace': '{other}' is neither 'timestamps' nor 'line'"
            )));
        }
    };
    if body.is_empty() {
        return Err(Problem::bad_request(
            "the body must be a pcap or pcapng capture",
        ));
    }
    let data = body.to_vec();
    let v = s
        .ctl
        .call(move |c| c.inject(&port, &data, line_rate))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "shadownet", description = "Traffic shadowing on the NIC: tenants, networks, shadows, versions, policies, findings, incidents, mitigation."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        health, create_tenant, list_tenants, get_tenant, update_tenant, issue_token,
        create_network, list_networks, get_network, update_network, delete_network, add_node,
        remove_node, network_history, network_diff, network_rollback, create_shadow,
        list_shadows, get_shadow, delete_shadow, complete_shadow, shadow_capacity,
        shadow_policy, shadow_history, shadow_diff, shadow_rollback, put_automation,
        list_automations, delete_automation, report_alert, audit, nic_status, nic_drift,
        nic_resync, nic_reset, sim_inject, ingest_findings, put_shadow_capture, put_shadow_capture_labels, list_findings,
        list_incidents,
        get_incident, close_incident, get_mitigation_policy, put_mitigation_policy,
        list_mitigations, propose_mitigation, get_mitigation, commit_mitigation,
        withdraw_mitigation, trial_mitigation, shadow_loop, suricata_status
    ),
    components(schemas(Problem, FieldError, QuotaExceeded, Usage, TenantView, CreatedTenant,
        IssuedToken, RollbackRequest, SyncReport, Teardown, AlertOutcome, HistoryEntry,
        NicStatus, InjectReport, Change, AuditRecord, Finding, Correlation, ProductionVm,
        PortCounters, Incident, IncidentState, SignatureCount, IncidentDetail, IngestReport,
        PolicyAction, MitigationPolicy, MitigationMode, GroupKey, Mitigation, MitigationState,
        BlockRule, ProposeRequest, MitigationChange, Activation, AclEntry, HeavyHitter, StoredCapture, StoredLabels, TrialRequest,
        TrialReport, Volume, VmVolume, GeneratedLoop, LoopReport, LoopIngest, ClassOutcome,
        SuricataLoop, SuricataStatus, SuricataCounters, ExitInfo))
)]
pub struct ApiDoc;

// ---- findings, incidents, mitigation -------------------------------------------------------

/// Largest findings batch or uploaded trial capture accepted, in bytes.
pub const FINDINGS_LIMIT: usize = 16 << 20;

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(ct: &str) -> bool {
    ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
}

/// Findings from a shadow's analysis nodes: one Suricata-EVE alert, or a batch as NDJSON
/// (`application/x-ndjson`) or a JSON array. Each is correlated to production, stored with
/// the shadow and grouped into incidents; the tenant's mitigation policy then acts. A batch
/// with one bad event is refused whole (422, every problem with its path
/// `events/<i>/<field>`).
#[utoipa::path(post, path = "/v1/shadows/{shadow}/findings", tag = "findings",
    params(("shadow" = String, Path)),
    request_body(content = Object, description = "EVE alert(s): JSON object, JSON array or NDJSON",
        content_type = "application/x-ndjson"),
    responses((status = 201, body = IngestReport), (status = "4XX", body = Problem)))]
pub async fn ingest_findings<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(shadow): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let ct = content_type(&headers);
    if !(is_json(&ct) || ct == "application/x-ndjson" || ct == "application/jsonl") {
        return Err(Problem::unsupported_media(
            "findings are JSON or NDJSON: send 'Content-Type: application/json' or 'application/x-ndjson'",
        ));
    }
    let events = parse_events(&body).map_err(|errors| {
        let mut p = Problem::bad_request(
            errors
                .iter()
                .map(|f| format!("{}: {}", f.path, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        );
        p.errors = errors;
        p
    })?;
    let tenant = caller.tenant()?.to_string();
    let v = s
        .ctl
        .call(move |c| {
            c.ingest_findings(
                ShadowRef::Name {
                    tenant,
                    name: shadow,
                },
                events,
                &caller.actor,
            )
        })
        .await??;
    Ok(json(StatusCode::CREATED, &v))
}

/// Stores a recording of the shadow's traffic (pcap or pcapng body) with the shadow, for
/// trials (`POST /v1/mitigations/{id}/trial` with `{"artefact": NAME}`); replaces one of the
/// same name. Counted against `max_stored_bytes`, purged with the shadow.
#[utoipa::path(put, path = "/v1/shadows/{shadow}/captures/{name}", tag = "findings",
    params(("shadow" = String, Path), ("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/vnd.tcpdump.pcap"),
    responses((status = 201, body = StoredCapture), (status = "4XX", body = Problem)))]
pub async fn put_shadow_capture<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path((shadow, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.store_shadow_capture(&caller, &shadow, &name, &body))
        .await??;
    Ok(json(StatusCode::CREATED, &v))
}

/// Stores the ground truth of a capture stored with the shadow (`labels.csv` of
/// `shadowctl traffic gen`, one row per frame of the capture): a loop replaying the capture
/// (`POST /v1/shadows/{shadow}/loop` with `{"artefact": NAME}`) then reports per attack
/// class. Storing the capture again drops its labels.
#[utoipa::path(put, path = "/v1/shadows/{shadow}/captures/{name}/labels", tag = "findings",
    params(("shadow" = String, Path), ("name" = String, Path)),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = StoredLabels), (status = "4XX", body = Problem)))]
pub async fn put_shadow_capture_labels<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path((shadow, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.store_shadow_capture_labels(&caller, &shadow, &name, &body))
        .await??;
    Ok(json(StatusCode::CREATED, &v))
}

/// The caller's findings, oldest first (`?shadow=NAME`, `?since=` unix ms or RFC 3339,
/// `?limit=N`, default 1000).
#[utoipa::path(get, path = "/v1/findings", tag = "findings",
    params(("shadow" = Option<String>, Query), ("since" = Option<String>, Query),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Vec<Finding>), (status = "4XX", body = Problem)))]
pub async fn list_findings<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let args = QueryArgs::parse(q.as_deref());
    let since_ms = match args.text("since") {
        None => None,
        Some(v) => Some(match v.parse::<i64>() {
            Ok(ms) => ms,
            Err(_) => parse_timestamp(v).map_err(|e| {
                Problem::bad_request(format!(
                    "query parameter 'since': {e} (or unix milliseconds)"
                ))
            })?,
        }),
    };
    let query = FindingQuery {
        shadow: args.text("shadow").map(str::to_string),
        since_ms,
        limit: args.number::<usize>("limit")?.unwrap_or(1000).min(100_000),
    };
    let v = s
        .ctl
        .read(move |c| c.list_findings(&caller, &query))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// The caller's incidents, by id.
#[utoipa::path(get, path = "/v1/incidents", tag = "findings",
    responses((status = 200, body = Vec<Incident>), (status = "4XX", body = Problem)))]
pub async fn list_incidents<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.list_incidents(&caller)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// An incident with its findings.
#[derive(Serialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: Incident,
    /// Its findings still stored (a purged shadow's findings go with it).
    pub findings: Vec<Finding>,
}

fn incident_id(id: &str) -> Result<u64, Problem> {
    id.parse()
        .map_err(|_| Problem::not_found(format!("incident '{id}' does not exist")))
}

/// One incident with its findings.
#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "findings",
    params(("id" = u64, Path)),
    responses((status = 200, body = IncidentDetail), (status = "4XX", body = Problem)))]
pub async fn get_incident<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = incident_id(&id)?;
    let (incident, findings) = s.ctl.read(move |c| c.get_incident(&caller, id)).await??;
    Ok(json(StatusCode::OK, &IncidentDetail { incident, findings }))
}

/// Closes an incident (new findings open a new one; its mitigations stay).
#[utoipa::path(post, path = "/v1/incidents/{id}/close", tag = "findings",
    params(("id" = u64, Path)),
    responses((status = 200, body = Incident), (status = "4XX", body = Problem)))]
pub async fn close_incident<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let id = incident_id(&id)?;
    let v = s.ctl.call(move |c| c.close_incident(&caller, id)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// The caller's mitigation policy (version 0: the defaults, none stored).
#[utoipa::path(get, path = "/v1/mitigation-policy", tag = "mitigation",
    responses((status = 200, body = MitigationPolicy), (status = "4XX", body = Problem)))]
pub async fn get_mitigation_policy<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s
        .ctl
        .read(move |c| c.get_mitigation_policy(&caller))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// Replaces the caller's mitigation policy.
#[utoipa::path(put, path = "/v1/mitigation-policy", tag = "mitigation",
    request_body = MitigationPolicy,
    responses((status = 200, body = MitigationPolicy), (status = "4XX", body = Problem)))]
pub async fn put_mitigation_policy<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    body: JsonBody<MitigationPolicy>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.put_mitigation_policy(&caller, body.value))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// The caller's mitigations (block rules in every state), by id.
#[utoipa::path(get, path = "/v1/mitigations", tag = "mitigation",
    responses((status = 200, body = Vec<Mitigation>), (status = "4XX", body = Problem)))]
pub async fn list_mitigations<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
) -> ApiResult {
    let v = s.ctl.read(move |c| c.list_mitigations(&caller)).await??;
    Ok(json(StatusCode::OK, &v))
}

/// Proposes a block rule by hand (refused with 409 when its source is allow-listed).
#[utoipa::path(post, path = "/v1/mitigations", tag = "mitigation",
    request_body = ProposeRequest,
    responses((status = 201, body = Mitigation), (status = "4XX", body = Problem)))]
pub async fn propose_mitigation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    body: JsonBody<ProposeRequest>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.propose_mitigation(&caller, body.value))
        .await??;
    Ok(with_version(StatusCode::CREATED, &v))
}

/// One mitigation.
#[utoipa::path(get, path = "/v1/mitigations/{id}", tag = "mitigation",
    params(("id" = String, Path)),
    responses((status = 200, body = Mitigation), (status = "4XX", body = Problem)))]
pub async fn get_mitigation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let v = s
        .ctl
        .read(move |c| c.get_mitigation(&caller, &id))
        .await??;
    Ok(with_version(StatusCode::OK, &v))
}

/// A mitigation after a change, with what programming the NIC did.
#[derive(Serialize, ToSchema)]
pub struct MitigationChange {
    /// The mitigation.
    pub mitigation: Versioned<Mitigation>,
    /// What reconciling the NIC did.
    pub sync: SyncReport,
    /// For a commit: where the rule sits on the NIC and from which table generation on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
}

/// Commits a proposed block rule into the production NIC's ACL (429 past the policy's
/// `max_rules`, 409 when its source is allow-listed).
#[utoipa::path(post, path = "/v1/mitigations/{id}/commit", tag = "mitigation",
    params(("id" = String, Path)),
    responses((status = 200, body = MitigationChange), (status = "4XX", body = Problem)))]
pub async fn commit_mitigation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let (mitigation, activation) = s
        .ctl
        .call(move |c| c.commit_mitigation(&caller, &id))
        .await??;
    Ok(json(
        StatusCode::OK,
        &MitigationChange {
            mitigation,
            sync: activation.sync.clone(),
            activation: Some(activation),
        },
    ))
}

/// Withdraws a mitigation (removed from the NIC when it was active).
#[utoipa::path(delete, path = "/v1/mitigations/{id}", tag = "mitigation",
    params(("id" = String, Path)),
    responses((status = 200, body = MitigationChange), (status = "4XX", body = Problem)))]
pub async fn withdraw_mitigation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let (mitigation, sync) = s
        .ctl
        .call(move |c| c.withdraw_mitigation(&caller, &id))
        .await??;
    Ok(json(
        StatusCode::OK,
        &MitigationChange {
            mitigation,
            sync,
            activation: None,
        },
    ))
}

/// Runs generated traffic (a `shadowctl traffic gen` scenario) or a recorded capture (an
/// artefact of the shadow, or with the admin token a file on the daemon's host) through the
/// simulated production NIC with the shadow's analysis in the loop: copies (or, in redirect
/// mode, the production frames) reach the shadow's built-in detector and honeypots, their
/// alerts are ingested as findings, correlated and acted on by the mitigation policy, which
/// in `auto` mode blocks in the production NIC's ACL while the traffic still runs. The
/// report counts, per attack class (`unlabelled` for a capture), what reached production
/// before and after detection and the block.
#[utoipa::path(post, path = "/v1/shadows/{shadow}/loop", tag = "mitigation",
    params(("shadow" = String, Path)),
    request_body = GeneratedLoop,
    responses((status = 200, body = LoopReport), (status = "4XX", body = Problem)))]
pub async fn shadow_loop<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(shadow): Path<String>,
    body: JsonBody<GeneratedLoop>,
) -> ApiResult {
    let v = s
        .ctl
        .call(move |c| c.run_generated_loop(&caller, &shadow, body.value))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// Tries a block rule over recorded traffic through a scratch simulated NIC: the body is a
/// pcap/pcapng capture, or JSON naming a capture artefact of the shadow
/// (`{"artefact": NAME}`) or, with the admin token, a file on the daemon's host
/// (`{"pcap": PATH}`). Production is not touched.
#[utoipa::path(post, path = "/v1/mitigations/{id}/trial", tag = "mitigation",
    params(("id" = String, Path)),
    request_body(content = TrialRequest, description = "JSON, or a capture as application/vnd.tcpdump.pcap"),
    responses((status = 200, body = TrialReport), (status = "4XX", body = Problem)))]
pub async fn trial_mitigation<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let source = if is_json(&content_type(&headers)) {
        let req: TrialRequest = serde_json::from_slice(&body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => Problem::unprocessable(e.to_string()),
                _ => Problem::bad_request(format!("the body is not valid JSON: {e}")),
            }
        })?;
        match (req.pcap, req.artefact) {
            (Some(p), None) => CaptureSource::Path(p.into()),
            (None, Some(a)) => CaptureSource::Artefact(a),
            _ => {
                return Err(Problem::unprocessable(
                    "name exactly one of 'pcap' and 'artefact' (or send the capture as the body)",
                ));
            }
        }
    } else if body.is_empty() {
        return Err(Problem::bad_request(
            "send a pcap or pcapng capture as the body, or JSON naming one",
        ));
    } else {
        CaptureSource::Bytes(body.to_vec())
    };
    let v = s
        .ctl
        .call(move |c| c.trial_mitigation(&caller, &id, source))
        .await??;
    Ok(json(StatusCode::OK, &v))
}

/// The daemon's supervised Suricata (`shadownetd --suricata`): whether it runs, its binary
/// and version, restarts and how the last run ended, Suricata's own counters read now over
/// its command socket (`dump-counters`: packets, alerts, drops), and the EVE events read.
/// A daemon without Suricata, or whose Suricata did not start, says so (`enabled`,
/// `error`).
#[utoipa::path(get, path = "/v1/analysis/suricata", tag = "analysis",
    responses((status = 200, body = SuricataStatus), (status = "4XX", body = Problem)))]
pub async fn suricata_status<D: Backend>(
    State(s): State<ApiState<D>>,
    Auth(_caller): Auth,
) -> ApiResult {
    let v = s.ctl.call(|c| c.suricata_status()).await?;
    Ok(json(StatusCode::OK, &v))
}
