//! What can go wrong in a control-plane operation, with the HTTP status each maps to.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    driver::DriverError,
    model::{compile::CompileError, validate::FieldError},
    reconcile::ReconcileError,
    store::StoreError,
};

/// Which resource limit a request would exceed, and by how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuotaExceeded {
    /// The limit's name, as in [`crate::model::Limits`].
    pub limit: String,
    /// Its value for the tenant.
    pub allowed: u64,
    /// What the tenant has now.
    pub current: u64,
    /// What the request would bring it to.
    pub requested: u64,
    /// `requested - allowed`.
    pub over_by: u64,
}

impl QuotaExceeded {
    /// Refuses `requested` when it is above `allowed`, naming the limit and by how much.
    pub fn check(
        limit: &str,
        allowed: u64,
        current: u64,
        requested: u64,
    ) -> Result<(), ControlError> {
        if requested <= allowed {
            return Ok(());
        }
        Err(ControlError::Quota(QuotaExceeded {
            limit: limit.into(),
            allowed,
            current,
            requested,
            over_by: requested - allowed,
        }))
    }
}

/// Why an operation failed. Every variant leaves the store and the NIC as they were, except
/// [`ControlError::Device`] after a committed change (the change is durable and the
/// reconciler retries).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such object (or it belongs to another tenant: the two are indistinguishable).
    #[error("{kind} '{name}' does not exist")]
    NotFound {
        /// Kind of object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The object exists already.
    #[error("{kind} '{name}' already exists")]
    Exists {
        /// Kind of object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The request is well-formed but its content is invalid.
    #[error("{} invalid field{}", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Invalid(Vec<FieldError>),
    /// The request conflicts with the current state (version precondition, object in use).
    #[error("{0}")]
    Conflict(String),
    /// A resource limit would be exceeded.
    #[error("limit {} is {} and would be exceeded by {} (now {}, requested {})", .0.limit, .0.allowed, .0.over_by, .0.current, .0.requested)]
    Quota(QuotaExceeded),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The NIC cannot hold what was asked (tables or sessions full, VNI clash on the fabric).
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The NIC failed.
    #[error(transparent)]
    Device(#[from] DriverError),
    /// Programming the NIC failed.
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

impl ControlError {
    /// One invalid field.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> ControlError {
        ControlError::Invalid(vec![FieldError {
            path: path.into(),
            message: message.into(),
        }])
    }

    /// The HTTP status this error is reported with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::NotFound { .. } => 404,
            ControlError::Exists { .. } | ControlError::Conflict(_) => 409,
            ControlError::Invalid(_) => 422,
            ControlError::Quota(_) => 429,
            ControlError::Forbidden(_) => 403,
            ControlError::Compile(_) => 409,
            ControlError::Store(StoreError::Conflict { .. }) => 412,
            ControlError::Store(StoreError::IdempotencyMismatch { .. }) => 422,
            ControlError::Store(_) | ControlError::Device(_) | ControlError::Reconcile(_) => 500,
        }
    }

    /// A short machine-readable slug for the problem type.
    pub fn slug(&self) -> &'static str {
        match self {
            ControlError::NotFound { .. } => "not-found",
            ControlError::Exists { .. } => "exists",
            ControlError::Invalid(_) => "invalid",
            ControlError::Conflict(_) => "conflict",
            ControlError::Quota(_) => "quota-exceeded",
            ControlError::Forbidden(_) => "forbidden",
            // The NIC's tables or VFs cannot hold the desired state; any other compile error
            // is a conflict between objects (clashing VNIs or sessions, a rate limit that
            // would tie with a rule).
            ControlError::Compile(
                CompileError::Capacity { .. } | CompileError::OutOfVfs { .. },
            ) => "nic-capacity",
            ControlError::Compile(_) => "conflict",
            ControlError::Store(StoreError::Conflict { .. }) => "version-mismatch",
            ControlError::Store(StoreError::IdempotencyMismatch { .. }) => "idempotency-key-reused",
            ControlError::Store(_) => "store",
            ControlError::Device(_) => "device",
            ControlError::Reconcile(_) => "reconcile",
        }
    }
}
