//! The HTTP/JSON API under `/v1/` (R11), its OpenAPI document at `/openapi.json`.
//!
//! Every call is authenticated with a bearer token: a tenant's token sees and touches only
//! that tenant's objects (another tenant's object is "not found", never "forbidden", so ids
//! do not leak); the admin token manages tenants and the NIC, and acts on a tenant's objects
//! with the `Shadownet-Tenant` header. Errors are `application/problem+json`. Creation calls
//! take an `Idempotency-Key`: a retry with the same key and body gets the first answer back,
//! the same key with another body is refused.
//!
//! The controller runs on its own thread (the NIC and the store are used by one thread at a
//! time, in the order requests arrive); handlers send it closures and await the answer.
//! Reads (`GET`s of stored objects) may also run while a long operation such as a loop run
//! is between its steps; changes wait for it.

mod extract;
mod handlers;
mod problem;

use std::{sync::mpsc, thread};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post, put},
};

pub use extract::TENANT_HEADER;
pub use handlers::ApiDoc;
pub use problem::Problem;

use crate::control::{Backend, Controller, Job};

/// Largest request body accepted, in bytes (captures sent to the simulator excepted).
pub const BODY_LIMIT: usize = 1 << 20;

/// Largest capture accepted by `POST /v1/sim/inject`.
pub const CAPTURE_LIMIT: usize = 64 << 20;

/// A handle on the controller's thread.
pub struct Handle<D: Backend> {
    tx: mpsc::Sender<Job<D>>,
}

impl<D: Backend> Clone for Handle<D> {
    fn clone(&self) -> Self {
        Handle {
            tx: self.tx.clone(),
        }
    }
}

impl<D: Backend> Handle<D> {
    /// Starts the controller thread; `make` builds the controller on it (the NIC backend need
    /// not be `Send`). Returns the handle, or what `make` failed with.
    pub fn spawn<E: Send + 'static>(
        make: impl FnOnce() -> Result<Controller<D>, E> + Send + 'static,
    ) -> Result<Handle<D>, E> {
        let (tx, rx) = mpsc::channel::<Job<D>>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), E>>();
        thread::Builder::new()
            .name("controller".into())
            .spawn(move || {
                let c = match make() {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                c.serve(rx);
            })
            .expect("spawning the controller thread");
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Handle { tx }),
            Ok(Err(e)) => Err(e),
            Err(_) => panic!("the controller thread died while starting"),
        }
    }

    /// Runs `f` on the controller and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Controller<D>) -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Change(Box::new(move |c| {
                let _ = tx.send(f(c));
            })))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Runs `f`, which only reads, on the controller and returns its result: also while a
    /// long operation (a loop run) is between its steps.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Controller<D>) -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Read(Box::new(move |c| {
                let _ = tx.send(f(c));
            })))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Runs `f` on the controller from blocking code.
    pub fn call_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Controller<D>) -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Job::Change(Box::new(move |c| {
                let _ = tx.send(f(c));
            })))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())
    }
}

fn stopped() -> Problem {
    Problem::new(
        503,
        "unavailable",
        "Service unavailable",
        "the controller has stopped",
    )
}

/// What handlers share.
pub struct ApiState<D: Backend> {
    /// The controller.
    pub ctl: Handle<D>,
    /// SHA-256 of the admin token.
    pub admin_token_hash: String,
}

impl<D: Backend> Clone for ApiState<D> {
    fn clone(&self) -> Self {
        ApiState {
            ctl: self.ctl.clone(),
            admin_token_hash: self.admin_token_hash.clone(),
        }
    }
}

/// The API's routes.
pub fn router<D: Backend>(state: ApiState<D>) -> Router {
    use handlers::*;
    let v1 = Router::new()
        .route("/health", get(health))
        .route("/tenants", get(list_tenants::<D>).post(create_tenant::<D>))
        .route(
            "/tenants/{tenant}",
            get(get_tenant::<D>).put(update_tenant::<D>),
        )
        .route("/tenants/{tenant}/tokens", post(issue_token::<D>))
        .route(
            "/networks",
            get(list_networks::<D>).post(create_network::<D>),
        )
        .route(
            "/networks/{network}",
            get(get_network::<D>)
                .put(update_network::<D>)
                .delete(delete_network::<D>),
        )
        .route("/networks/{network}/nodes", post(add_node::<D>))
        .route(
            "/networks/{network}/nodes/{node}",
            axum::routing::delete(remove_node::<D>),
        )
        .route("/networks/{network}/versions", get(network_history::<D>))
        .route("/networks/{network}/diff", get(network_diff::<D>))
        .route("/networks/{network}/rollback", post(network_rollback::<D>))
        .route("/shadows", get(list_shadows::<D>).post(create_shadow::<D>))
        .route(
            "/shadows/{shadow}",
            get(get_shadow::<D>).delete(delete_shadow::<D>),
        )
        .route("/shadows/{shadow}/capacity", put(shadow_capacity::<D>))
        .route("/shadows/{shadow}/policy", put(shadow_policy::<D>))
        .route("/shadows/{shadow}/complete", post(complete_shadow::<D>))
        .route("/shadows/{shadow}/versions", get(shadow_history::<D>))
        .route("/shadows/{shadow}/diff", get(shadow_diff::<D>))
        .route("/shadows/{shadow}/rollback", post(shadow_rollback::<D>))
        .route(
            "/automations",
            get(list_automations::<D>).post(put_automation::<D>),
        )
        .route(
            "/automations/{automation}",
            axum::routing::delete(delete_automation::<D>),
        )
        .route("/alerts", post(report_alert::<D>))
        .route(
            "/shadows/{shadow}/findings",
            post(ingest_findings::<D>).layer(DefaultBodyLimit::max(FINDINGS_LIMIT)),
        )
        .route(
            "/shadows/{shadow}/captures/{name}",
            axum::routing::put(put_shadow_capture::<D>).layer(DefaultBodyLimit::max(CAPTURE_LIMIT)),
        )
        .route(
            "/shadows/{shadow}/captures/{name}/labels",
            axum::routing::put(put_shadow_capture_labels::<D>)
                .layer(DefaultBodyLimit::max(CAPTURE_LIMIT)),
        )
        .route("/shadows/{shadow}/loop", post(shadow_loop::<D>))
        .route("/analysis/suricata", get(suricata_status::<D>))
        .route("/findings", get(list_findings::<D>))
        .route("/incidents", get(list_incidents::<D>))
        .route("/incidents/{id}", get(get_incident::<D>))
        .route("/incidents/{id}/close", post(close_incident::<D>))
        .route(
            "/mitigation-policy",
            get(get_mitigation_policy::<D>).put(put_mitigation_policy::<D>),
        )
        .route(
            "/mitigations",
            get(list_mitigations::<D>).post(propose_mitigation::<D>),
        )
        .route(
            "/mitigations/{id}",
            get(get_mitigation::<D>).delete(withdraw_mitigation::<D>),
        )
        .route("/mitigations/{id}/commit", post(commit_mitigation::<D>))
        .route(
            "/mitigations/{id}/trial",
            post(trial_mitigation::<D>).layer(DefaultBodyLimit::max(CAPTURE_LIMIT)),
        )
        .route("/audit", get(audit::<D>))
        .route("/nic", get(nic_status::<D>))
        .route("/nic/drift", get(nic_drift::<D>))
        .route("/nic/resync", post(nic_resync::<D>))
        .route("/nic/reset", post(nic_reset::<D>))
        .route(
            "/sim/inject",
            post(sim_inject::<D>).layer(DefaultBodyLimit::max(CAPTURE_LIMIT)),
        );
    Router::new()
        .route("/openapi.json", get(openapi))
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
