//! The PEP 249 connection classes (`Connection`, `ConnectionInfo`, `Notifies`) and
//! `connect()`: the PyO3 face of `crate::session`, which holds the session core.

use crate::connect_params::parse_connect;
use crate::errors;
use crate::pool;
use crate::runtime;
use crate::session::{ConnCore, TxStatus};
use crate::types::decode::TzReplace;
use crate::types::pyrefs;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use crate::session::Connection;

#[pymethods]
impl Connection {
    #[getter]
    fn autocommit(&self) -> bool {
        self.core.state.lock().autocommit
    }

    #[setter]
    fn set_autocommit(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        let mut st = self.core.state.lock();
        if st.closed {
            return Err(errors::operational(py, "the connection is closed"));
        }
        if st.status != TxStatus::Idle && value != st.autocommit {
            return Err(errors::programming(
                py,
                format!("can't change 'autocommit' now: connection in transaction status {:?}", st.status),
            ));
        }
        st.autocommit = value;
        Ok(())
    }

    #[getter]
    fn isolation_level(&self, py: Python<'_>) -> PyResult<PyObject> {
        match self.core.state.lock().isolation_level {
            None => Ok(py.None()),
            Some(v) => Ok(pyrefs::get(py)?.isolation_level.bind(py).call1((v,))?.unbind()),
        }
    }

    #[setter]
    fn set_isolation_level(&self, py: Python<'_>, value: Option<i64>) -> PyResult<()> {
        if let Some(v) = value {
            if !(1..=4).contains(&v) {
                return Err(errors::programming(py, format!("invalid isolation level: {v}")));
            }
        }
        let mut st = self.core.state.lock();
        if st.status != TxStatus::Idle {
            return Err(errors::programming(py, "can't change 'isolation_level' now: connection in a transaction"));
        }
        st.isolation_level = value;
        Ok(())
    }

    #[getter]
    fn read_only(&self) -> Option<bool> {
        self.core.state.lock().read_only
    }

    #[setter]
    fn set_read_only(&self, value: Option<bool>) {
        self.core.state.lock().read_only = value;
    }

    #[getter]
    fn deferrable(&self) -> Option<bool> {
        self.core.state.lock().deferrable
    }

    #[setter]
    fn set_deferrable(&self, value: Option<bool>) {
        self.core.state.lock().deferrable = value;
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// True once the server side is gone (the pool will not reuse it).
    #[getter]
    fn broken(&self) -> bool {
        self.core.session.lock().as_ref().map(|s| s.client.is_closed()).unwrap_or(false)
    }

    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.core.end_transaction(py, true)
    }

    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        self.core.end_transaction(py, false)
    }

    fn close(&self, py: Python<'_>) {
        self.core.close(py)
    }

    /// Cancels the statement running on this connection (from any thread).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        if self.core.is_closed() {
            return Ok(()); // nothing runs there (psycopg: a no-op)
        }
        let session = self.core.session(py)?;
        let token = session.client.cancel_token();
        let Some((addr, hostname, port)) = session.client.peer() else {
            return Err(errors::operational(py, "the session's server address is unknown"));
        };
        let peer = (addr, hostname.map(str::to_string), port);
        let (_, tls) = pool::build_config(&self.core.spec).map_err(|e| errors::operational(py, e))?;
        let spec = &self.core.spec;
        runtime::block_on(py, crate::cancel::cancel(token, peer, spec, tls)).map_err(|e| errors::operational(py, e))
    }

    #[getter]
    fn info(slf: Bound<'_, Self>) -> ConnectionInfo {
        ConnectionInfo { core: slf.get().core.clone() }
    }

    #[getter]
    fn cursor_factory(&self, py: Python<'_>) -> PyObject {
        match self.core.cursor_factory.lock().as_ref() {
            Some(f) => f.clone_ref(py),
            None => py.get_type::<crate::cursor::Cursor>().into_any().unbind(),
        }
    }

    #[setter]
    fn set_cursor_factory(&self, value: Option<PyObject>) {
        *self.core.cursor_factory.lock() = value;
    }

    /// How timestamptz values come back: `None` keeps the session zone's tzinfo,
    /// `naive=True` strips it, otherwise the given tzinfo replaces it.
    #[pyo3(signature = (tzinfo=None, naive=false))]
    fn set_timestamptz_tzinfo(&self, tzinfo: Option<PyObject>, naive: bool) {
        let replace = if naive {
            TzReplace::Naive
        } else {
            match tzinfo {
                Some(tz) => TzReplace::With(tz),
                None => TzReplace::Keep,
            }
        };
        *self.core.tz_replace.lock() = Arc::new(replace);
    }

    /// psycopg-style registration hooks used by django.contrib.postgres (see _adapters.py).
    #[getter]
    fn adapters(slf: Bound<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        if let Some(a) = slf.get().core.adapters.lock().as_ref() {
            return Ok(a.clone_ref(py));
        }
        let shim = py.import("django_rustpg._adapters")?.getattr("AdaptersShim")?.call1((slf.clone(),))?.unbind();
        *slf.get().core.adapters.lock() = Some(shim.clone_ref(py));
        Ok(shim)
    }

    #[getter]
    fn hstore_oid(&self) -> Option<u32> {
        self.core.hstore_oid()
    }

    /// Registers the hstore OID so dict parameters are sent as hstore.
    fn register_hstore(&self, oid: u32) {
        self.core.hstore_oid.store(oid, Ordering::Relaxed);
    }

    /// Notices the server sent since the last call.
    fn take_notices(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let session = self.core.session(py)?;
        let mut n = session.shared.notices.lock();
        Ok(std::mem::take(&mut *n))
    }

    #[pyo3(signature = (name=None, *, scrollable=None, withhold=false))]
    fn cursor(slf: Bound<'_, Self>, name: Option<String>, scrollable: Option<bool>, withhold: bool) -> PyResult<PyObject> {
        let py = slf.py();
        if slf.get().core.is_closed() {
            return Err(errors::operational(py, "the connection is closed"));
        }
        let factory = slf.get().core.cursor_factory.lock().as_ref().map(|f| f.clone_ref(py));
        if let (Some(factory), None) = (&factory, &name) {
            return Ok(factory.bind(py).call1((slf.clone(),))?.unbind());
        }
        let cursor = crate::cursor::Cursor::new(slf.clone().unbind(), slf.get().core.clone(), name, scrollable, withhold);
        Ok(Bound::new(py, cursor)?.into_any().unbind())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, exc_type: PyObject, _v: PyObject, _tb: PyObject) -> PyResult<()> {
        if !self.core.is_closed() {
            let commit = exc_type.is_none(py);
            let r = self.core.end_transaction(py, commit);
            self.core.close(py);
            r?;
        }
        Ok(())
    }

    /// psycopg's `notifies()`: a generator of `psycopg.Notify` for channels this session
    /// LISTENs to, ending after `timeout` seconds or `stop_after` notifications.
    #[pyo3(signature = (*, timeout=None, stop_after=None))]
    fn notifies(&self, py: Python<'_>, timeout: Option<f64>, stop_after: Option<usize>) -> PyResult<Notifies> {
        let session = self.core.session(py)?;
        let deadline = match timeout {
            Some(t) if !(t >= 0.0 && t.is_finite()) => {
                return Err(errors::programming(py, "notifies(timeout=...) must be a non-negative number of seconds"))
            }
            Some(t) => Some(tokio::time::Instant::now() + Duration::from_secs_f64(t)),
            None => None,
        };
        // LISTEN state must not leak into the next user of this pooled session.
        self.core.state.lock().dirty = true;
        Ok(Notifies { shared: session.shared.clone(), deadline, left: stop_after })
    }

    /// Pool statistics for this connection's pool.
    fn pool_status(&self, py: Python<'_>) -> PyResult<PyObject> {
        let s = self.core.pool.pool.status();
        let o = self.core.pool.overflow.status();
        let stats = &self.core.pool.stats;
        let d = PyDict::new(py);
        d.set_item("max_size", s.max_size)?;
        d.set_item("size", s.size)?;
        d.set_item("available", s.available)?;
        d.set_item("idle", s.available)?;
        d.set_item("in_use", s.size - s.available + (o.size - o.available))?;
        d.set_item("waiting", s.waiting)?;
        d.set_item("overflow_in_use", o.size - o.available)?;
        d.set_item("checkouts", stats.checkouts.load(Ordering::Relaxed))?;
        d.set_item("overflow_checkouts", stats.overflow_checkouts.load(Ordering::Relaxed))?;
        d.set_item("timeouts", stats.timeouts.load(Ordering::Relaxed))?;
        d.set_item("wait_ms_p50", stats.wait_percentile_ms(0.5))?;
        d.set_item("wait_ms_p99", stats.wait_percentile_ms(0.99))?;
        d.set_item("discarded_dead", stats.discarded_dead.load(Ordering::Relaxed))?;
        d.set_item("discarded_read_only", stats.discarded_read_only.load(Ordering::Relaxed))?;
        d.set_item("closed_idle", stats.idle_closed.load(Ordering::Relaxed))?;
        Ok(d.into_any().unbind())
    }
}

#[pyclass(module = "django_rustpg._native")]
pub struct Notifies {
    shared: Arc<pool::SessionShared>,
    deadline: Option<tokio::time::Instant>,
    left: Option<usize>,
}

#[pymethods]
impl Notifies {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        if self.left == Some(0) {
            return Ok(None);
        }
        let shared = self.shared.clone();
        let deadline = self.deadline;
        let Some((channel, payload, pid)) = runtime::block_on(py, async move { shared.next_notification(deadline).await }) else {
            return Ok(None);
        };
        if let Some(left) = self.left.as_mut() {
            *left -= 1;
        }
        Ok(Some(py.import("psycopg")?.getattr("Notify")?.call1((channel, payload, pid))?.unbind()))
    }
}

#[pyclass(module = "django_rustpg._native", frozen)]
pub struct ConnectionInfo {
    core: Arc<ConnCore>,
}

#[pymethods]
impl ConnectionInfo {
    fn parameter_status(&self, py: Python<'_>, name: &str) -> PyResult<Option<String>> {
        Ok(self.core.session(py)?.shared.parameter(name))
    }

    #[getter]
    fn server_version(&self, py: Python<'_>) -> PyResult<i64> {
        let v = self.core.session(py)?.shared.parameter("server_version").unwrap_or_default();
        Ok(parse_server_version(&v))
    }

    #[getter]
    fn backend_pid(&self, py: Python<'_>) -> PyResult<i32> {
        let session = self.core.session(py)?;
        if let Some(pid) = session.shared.backend_pid.get() {
            return Ok(*pid);
        }
        let row = runtime::block_on(py, async { session.client.query_one("SELECT pg_backend_pid()", &[]).await })
            .map_err(|e| errors::from_pg(py, &e, None))?;
        let pid: i32 = row.get(0);
        let _ = session.shared.backend_pid.set(pid);
        Ok(pid)
    }

    #[getter]
    fn transaction_status(&self, py: Python<'_>) -> PyResult<PyObject> {
        let st = self.core.state.lock();
        let code = if st.closed { 4 } else { st.status as i64 };
        drop(st);
        Ok(pyrefs::get(py)?.transaction_status.bind(py).call1((code,))?.unbind())
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn timezone(&self, py: Python<'_>) -> PyResult<PyObject> {
        let name = self.core.timezone().unwrap_or_else(|| "UTC".into());
        let refs = pyrefs::get(py)?;
        Ok(refs.zoneinfo.bind(py).call1((name,)).unwrap_or_else(|_| refs.utc.bind(py).clone()).unbind())
    }

    #[getter]
    fn dbname(&self) -> Option<String> {
        self.core.spec.dbname.clone()
    }

    #[getter]
    fn user(&self) -> Option<String> {
        self.core.spec.user.clone()
    }

    /// The host of the list this session connected to (its name if given, else the
    /// address), as libpq's PQhost.
    #[getter]
    fn host(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let session = self.core.session(py)?;
        Ok(session.client.peer().map(|(addr, name, _)| name.map(str::to_string).unwrap_or(addr)))
    }

    /// The address dialled (hostaddr, or the address the host name resolved to).
    #[getter]
    fn hostaddr(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let session = self.core.session(py)?;
        Ok(session.client.peer().map(|(addr, _, _)| addr))
    }

    #[getter]
    fn port(&self, py: Python<'_>) -> PyResult<Option<u16>> {
        let session = self.core.session(py)?;
        Ok(session.client.peer().map(|(_, _, port)| port))
    }

    #[getter]
    fn vendor(&self) -> &'static str {
        "PostgreSQL"
    }
}

pub fn parse_server_version(v: &str) -> i64 {
    let numeric: String = v.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if major >= 10 {
        major * 10000 + minor
    } else {
        major * 10000 + minor * 100 + parts.next().unwrap_or(0)
    }
}

/// `connect(**params)`: checks a session out of this process's pool for these parameters.
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn connect(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Connection> {
    let core = ConnCore::open(py, parse_connect(py, kwargs)?)?;
    Ok(Connection { core: Arc::new(core) })
}

/// Closes the pool that `connect(**params)` would use.
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn close_pool(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let req = parse_connect(py, kwargs)?;
    pool::close_pool(&req.spec, &req.pool_spec);
    Ok(())
}

/// Closes every pool of this process (after settings change, in tests).
#[pyfunction]
pub fn close_all_pools() {
    pool::close_all();
}

/// Ends this process's idle pooled sessions with a Terminate, as closing a libpq
/// connection does, waiting at most `timeout` seconds for the server to see them go. At
/// interpreter exit: else each pooled socket just drops, and the server counts an
/// abandoned session (and may log a reset connection).
#[pyfunction]
#[pyo3(signature = (timeout = 1.0))]
pub fn close_idle_sessions(py: Python<'_>, timeout: f64) -> PyResult<()> {
    if !(0.0..=MAX_CLOSE_WAIT_SECS).contains(&timeout) {
        return Err(errors::programming(
            py,
            format!("close_idle_sessions: timeout must be between 0 and {MAX_CLOSE_WAIT_SECS} seconds, got {timeout}"),
        ));
    }
    let limit = Duration::from_secs_f64(timeout);
    runtime::block_on(py, async move {
        let _ = tokio::time::timeout(limit, pool::close_idle_sessions()).await;
    });
    Ok(())
}

const MAX_CLOSE_WAIT_SECS: f64 = 60.0;

#[cfg(test)]
mod tests {
    use super::parse_server_version;

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("15.20 (Debian 15.20-0+deb12u1)"), 150020);
        assert_eq!(parse_server_version("9.6.3"), 90603);
        assert_eq!(parse_server_version("17beta1"), 170000);
    }
}
