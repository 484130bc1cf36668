//! Connecting to PostgreSQL: the client configuration, the pool, and
//! turning the client's errors into [`StoreError`]s that say which of
//! "cannot reach", "refused the login" and "lacks a permission" it is.

use std::error::Error as _;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::store::{Durability, OpenOptions, PostgresUrl, StoreError};

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an operation waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Idle connections send TCP keepalives this often, so a server that
/// vanished (rather than closing the connection) is noticed.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);

/// The client configuration for `url`: connect timeout, keepalives, a
/// name the server shows, and the durability of commits.
pub(crate) fn client_config(
    url: &PostgresUrl,
    durability: Durability,
) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config =
        url.expose().parse().map_err(|e: tokio_postgres::Error| StoreError::BadUrl {
            url: url.redacted(),
            reason: e.to_string(),
        })?;
    config
        .application_name("mailroom")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE);
    // Every hot query is written for a plain, ordered index scan (a claim
    // reads the first due messages of a type in claim order). On the stale
    // statistics of a table that swings from empty to millions of rows, the
    // planner would rather gather every queued message through a bitmap and
    // sort them, on every claim.
    //
    // Producers' commits wait for the disk (`on`, the server's default)
    // unless the operator chose speed; the dispatcher's commits never wait:
    // losing one to a crash of the server means a redelivery, not a loss.
    config.options(match durability {
        Durability::Full => "-c enable_bitmapscan=off",
        Durability::Fast => "-c enable_bitmapscan=off -c synchronous_commit=off",
    });
    Ok(config)
}

/// A pool of connections with `options`' size.
pub(crate) fn pool(url: &PostgresUrl, options: &OpenOptions) -> Result<Pool, StoreError> {
    let config = client_config(url, options.durability)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.max_connections.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StoreError::BadUrl {
            url: url.redacted(),
            reason: e.to_string(),
        })
}

/// Maps client errors on one store to [`StoreError`]s naming it (without
/// its password).
#[derive(Debug, Clone)]
pub(crate) struct Errors {
    pub(crate) store: String,
}

impl Errors {
    pub(crate) fn pg(&self, e: &tokio_postgres::Error) -> StoreError {
        let store = self.store.clone();
        if let Some(db) = e.as_db_error() {
            let reason = db.message().to_owned();
            let code = db.code();
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                return StoreError::LoginRefused { store, reason };
            }
            if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                return StoreError::PermissionDenied { store, reason };
            }
            if *code == SqlState::INVALID_CATALOG_NAME {
                return StoreError::Postgres {
                    store,
                    reason: format!("{reason}: create it, or fix the database name in the store URL"),
                };
            }
            return StoreError::Postgres { store, reason };
        }
        // No answer from the server: the connection could not be made, or
        // it dropped. Name the innermost cause once.
        let mut cause: &dyn std::error::Error = e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let reason = cause.to_string();
        if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
            let reason = if e.is_closed() {
                "the connection was closed".to_owned()
            } else {
                reason
            };
            return StoreError::Unreachable { store, reason };
        }
        StoreError::Postgres {
            store,
            reason: e.to_string(),
        }
    }

    pub(crate) fn pool(&self, e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => self.pg(&e),
            PoolError::Timeout(_) => StoreError::Unreachable {
                store: self.store.clone(),
                reason: "no connection could be made or freed in time".to_owned(),
            },
            other => StoreError::Postgres {
                store: self.store.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// A stored value this build cannot read.
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            store: self.store.clone(),
            reason: reason.into(),
        }
    }
}
