//! target_session_attrs on a live session: a server that no longer has the attributes asked
//! for (turned read-only, a standby under read-write) gets no further statement from it.

use super::ConnCore;
use crate::pool::{self, PooledSession};
use crate::runtime;
use pyo3::prelude::*;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::error::SqlState;

impl ConnCore {
    /// False when the session's server reported a state `target_session_attrs` refuses. A
    /// session that changed its own settings (SET default_transaction_read_only) is judged
    /// by `in_hot_standby` alone: its read-only state may be its own doing.
    pub(super) fn admits_target(&self, session: &PooledSession) -> bool {
        if matches!(self.target, TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby) {
            return true;
        }
        let own_settings = self.state.lock().dirty;
        pool::admits_target(session, self.target, own_settings)
    }

    /// A read-only refusal (25006) under a target that needs a writable server, by a server
    /// known (after the refusal) not to be one.
    pub(super) fn refused_for_target(&self, py: Python<'_>, session: &PooledSession, e: &tokio_postgres::Error) -> bool {
        if !matches!(self.target, TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary)
            || e.code() != Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
        {
            return false;
        }
        !self.admits_target_now(py, session)
    }

    /// `admits_target` after reading what the server sent since the last statement: the
    /// ParameterStatus saying it turned read-only arrives before a ReadyForQuery the
    /// statement's result did not wait for.
    pub(super) fn admits_target_now(&self, py: Python<'_>, session: &PooledSession) -> bool {
        if matches!(self.target, TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby) {
            return true;
        }
        // One no-wait poll; the runtime reads the socket only when the server sent something.
        if pool::idle_socket_has_news(session) {
            runtime::block_on(py, pool::observe_idle_sockets());
        }
        self.admits_target(session)
    }

    pub(super) fn not_target_message(&self) -> String {
        let target = self.spec.target_session_attrs.as_deref().unwrap_or("any");
        format!(
            "the server of this session no longer has target_session_attrs={target} (it is read-only or \
             in hot standby): the session is discarded; retry the transaction on a new connection"
        )
    }
}
