//! The session core behind a PEP 249 connection: a session checked out of the pool and the
//! transaction state Django drives (autocommit, BEGIN/COMMIT/ROLLBACK, isolation level),
//! returned to the pool clean on close. Statement runs live in `run`.

mod run;
mod target;

pub use run::{EarlyRows, Outcome, EARLY_BATCH};

use crate::connect_params::ConnectRequest;
use crate::errors;
use crate::pool::{self, ConnectSpec, PoolHandle, PoolSpec, PooledSession};
use crate::runtime;
use crate::sql::classify::{Effects, TxEffect};
use crate::types::decode::TzReplace;
use deadpool::managed::{Object, PoolError, TimeoutType, Timeouts};
use parking_lot::Mutex;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle = 0,
    InTrans = 2,
    InError = 3,
}

pub struct TxState {
    pub autocommit: bool,
    pub status: TxStatus,
    pub isolation_level: Option<i64>,
    pub read_only: Option<bool>,
    pub deferrable: Option<bool>,
    /// A statement may have changed session state: reset before reuse.
    pub dirty: bool,
    /// Touched prepared statements: close the session instead of pooling it.
    pub unpoolable: bool,
    pub closed: bool,
}

pub struct ConnCore {
    owner_pid: u32,
    pub(crate) session: Mutex<Option<Arc<PooledSession>>>,
    pub state: Mutex<TxState>,
    pub cursor_factory: Mutex<Option<PyObject>>,
    pub adapters: Mutex<Option<PyObject>>,
    pub tz_replace: Mutex<Arc<TzReplace>>,
    pub hstore_oid: AtomicU32,
    pub spec: ConnectSpec,
    pub pool: PoolHandle,
    pool_spec: PoolSpec,
    /// The user set no OPTIONS["pool"]: never make a thread wait (see `checkout`).
    implicit_pool: bool,
    /// The session came from the overflow: close it after use.
    overflow: AtomicBool,
    /// The session sat idle in the pool and has not run a statement since checkout.
    unproven: AtomicBool,
    /// A statement failed because the server ended the session.
    lost: AtomicBool,
    reuse: bool,
    reset_always: bool,
    /// Runs of one statement on a session after which it is prepared (None: never).
    prepare_threshold: Option<u32>,
    /// target_session_attrs: a session whose server no longer has them gets no statement.
    target: tokio_postgres::config::TargetSessionAttrs,
}

/// The Python `Connection` object (its methods are in `crate::connection`): cursors reach the
/// session core through it without depending on the connection module.
#[pyclass(module = "django_rustpg._native", subclass, frozen)]
pub struct Connection {
    pub core: Arc<ConnCore>,
}

impl ConnCore {
    pub fn hstore_oid(&self) -> Option<u32> {
        match self.hstore_oid.load(Ordering::Relaxed) {
            0 => None,
            o => Some(o),
        }
    }

    pub fn session(&self, py: Python<'_>) -> PyResult<Arc<PooledSession>> {
        if self.owner_pid != runtime::current_pid() {
            return Err(errors::interface(py, "the connection was opened in another process (before fork): open a new one"));
        }
        match self.session.lock().as_ref() {
            Some(s) => Ok(s.clone()),
            None => Err(errors::operational(py, "the connection is closed")),
        }
    }

    /// Closed by the user, or ended by the server (psycopg's `closed` after a lost session).
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
            || self.lost.load(Ordering::Relaxed)
            || self.session.lock().as_ref().is_some_and(|s| pool::is_gone(s))
    }

    /// Turns prepared statements off for this pool, warning once.
    fn prepared_statements_lost(&self, py: Python<'_>) {
        if self.pool.stats.prepared_off.swap(true, Ordering::Relaxed) {
            return;
        }
        let msg = "django_rustpg: a prepared statement was missing on the server session, so a \
                   transaction-mode pooler (PgBouncer < 1.21, or without max_prepared_statements) \
                   sits between the driver and PostgreSQL; prepare_threshold is now ignored for this \
                   pool. Set prepare_threshold=None, or PgBouncer >= 1.21 with max_prepared_statements.";
        if let Ok(warnings) = py.import("warnings") {
            let category = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
            let _ = warnings.call_method1("warn", (msg, category));
        }
    }

    /// Swaps a session that ran nothing (the server ended it, or no longer has the session
    /// attributes asked for) for a fresh one; `discarded` counts why.
    fn replace_session(&self, py: Python<'_>, discarded: &AtomicU64) -> PyResult<(Arc<PooledSession>, bool)> {
        if let Some(old) = self.session.lock().take() {
            if let Ok(obj) = Arc::try_unwrap(old) {
                drop(Object::take(obj));
            }
        }
        discarded.fetch_add(1, Ordering::Relaxed);
        let (obj, overflow, recycled) = checkout(py, &self.pool, &self.pool_spec, self.implicit_pool, &self.spec)?;
        self.overflow.store(overflow, Ordering::Relaxed);
        let session = Arc::new(obj);
        *self.session.lock() = Some(session.clone());
        Ok((session, recycled))
    }

    pub fn timezone(&self) -> Option<String> {
        let s = self.session.lock().clone()?;
        s.shared.parameter("TimeZone")
    }

    /// Autocommit with no transaction open.
    pub fn autocommit_idle(&self) -> bool {
        let st = self.state.lock();
        st.autocommit && st.status == TxStatus::Idle
    }

    /// After a statement failed: whether it left the transaction usable, that is, it ran
    /// in autocommit outside one, or its guarded run was undone (`session::run`).
    pub fn failure_left_no_trace(&self) -> bool {
        let st = self.state.lock();
        match st.status {
            TxStatus::Idle => st.autocommit,
            TxStatus::InTrans => true,
            TxStatus::InError => false,
        }
    }

    /// Before a statement: the BEGIN to send first, if a transaction must be opened.
    fn begin_for(&self, effects: Effects) -> Option<String> {
        let mut st = self.state.lock();
        if st.autocommit || st.status != TxStatus::Idle || matches!(effects.tx, TxEffect::Begin | TxEffect::Outside) {
            return None;
        }
        st.status = TxStatus::InTrans;
        Some(begin_sql(&st))
    }

    fn after(&self, effects: Effects, ok: bool) {
        let mut st = self.state.lock();
        if effects.dirties_session {
            st.dirty = true;
        }
        if effects.unpoolable {
            st.unpoolable = true;
        }
        if ok {
            match effects.tx {
                TxEffect::Begin => st.status = TxStatus::InTrans,
                TxEffect::End => st.status = TxStatus::Idle,
                TxEffect::RollbackToSavepoint => st.status = TxStatus::InTrans,
                TxEffect::None | TxEffect::Outside => {}
            }
        } else if st.status == TxStatus::InTrans && effects.tx != TxEffect::End {
            st.status = TxStatus::InError;
        } else if effects.tx == TxEffect::End {
            st.status = TxStatus::Idle;
        }
    }

    /// Runs `f` on the session inside the connection's transaction rules (BEGIN first when
    /// autocommit is off), updating the transaction state like a statement would.
    pub fn with_transaction<T, E: Into<tokio_postgres::Error>>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&PooledSession) -> Result<T, E>,
        sql: &str,
    ) -> PyResult<T> {
        let session = self.session(py)?;
        let effects = Effects::NONE;
        if let Some(begin) = self.begin_for(effects) {
            if let Err(e) = runtime::block_on(py, async { session.client.batch_execute(&begin).await }) {
                self.after(effects, false);
                return Err(errors::from_pg(py, &e, Some(&begin)));
            }
        }
        let result = f(&session).map_err(Into::into);
        self.after(effects, result.is_ok());
        result.map_err(|e| errors::from_pg(py, &e, Some(sql)))
    }

    /// A plain statement for transaction control.
    fn simple(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        let session = self.session(py)?;
        runtime::block_on(py, async { session.client.batch_execute(sql).await })
            .map_err(|e| errors::from_pg(py, &e, Some(sql)))
    }

    pub fn end_transaction(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        let status = self.state.lock().status;
        if self.is_closed() {
            return Err(errors::operational(py, "the connection is closed"));
        }
        if status == TxStatus::Idle {
            return Ok(());
        }
        let result = self.simple(py, if commit { "COMMIT" } else { "ROLLBACK" });
        self.state.lock().status = TxStatus::Idle;
        result
    }

    /// Returns the session to the pool clean, or closes it when it cannot be made clean.
    pub fn close(&self, py: Python<'_>) {
        let session = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            self.session.lock().take()
        };
        let Some(session) = session else { return };
        if self.owner_pid != runtime::current_pid() {
            // Inherited across fork: the socket belongs to the parent. Never touch it.
            std::mem::forget(session);
            return;
        }
        let (status, dirty, unpoolable) = {
            let st = self.state.lock();
            (st.status, st.dirty || self.reset_always, st.unpoolable)
        };
        let mut cleanup = String::new();
        if status != TxStatus::Idle {
            cleanup.push_str("ROLLBACK;");
        }
        if dirty {
            cleanup.push_str(RESET_SESSION);
            cleanup.push_str(&pool::session_setup_sql(&self.spec));
        }
        let reusable = self.reuse
            && !unpoolable
            && !self.overflow.load(Ordering::Relaxed)
            && !self.lost.load(Ordering::Relaxed)
            && !pool::is_gone(&session);
        let clean = reusable
            && (cleanup.is_empty()
                || runtime::block_on(py, async { session.client.batch_execute(&cleanup).await }).is_ok());
        if let Ok(obj) = Arc::try_unwrap(session) {
            if !clean || pool::is_gone(&obj) {
                // Dropping the client queues a Terminate; drive the runtime until the
                // server session is really gone rather than leaving it to a later call.
                let shared = obj.shared.clone();
                drop(Object::take(obj));
                runtime::block_on(py, async {
                    let _ = tokio::time::timeout(Duration::from_secs(2), shared.wait_ended()).await;
                });
            }
        }
    }
}

impl Drop for ConnCore {
    fn drop(&mut self) {
        // Dropped without close(): never return a session that may be mid-transaction.
        if let Some(session) = self.session.get_mut().take() {
            if self.owner_pid != runtime::current_pid() {
                std::mem::forget(session);
                return;
            }
            let st = self.state.get_mut();
            if let Ok(obj) = Arc::try_unwrap(session) {
                if st.status != TxStatus::Idle || st.dirty || !self.reuse || *self.overflow.get_mut() {
                    drop(Object::take(obj));
                }
            }
        }
    }
}

/// Everything a session can carry over except prepared statements, which tokio-postgres
/// itself relies on (its type lookups); sessions that PREPARE are never pooled dirty.
const RESET_SESSION: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
    SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES;";

fn begin_sql(st: &TxState) -> String {
    let mut sql = String::from("BEGIN");
    if let Some(level) = st.isolation_level {
        sql.push_str(match level {
            1 => " ISOLATION LEVEL READ UNCOMMITTED",
            3 => " ISOLATION LEVEL REPEATABLE READ",
            4 => " ISOLATION LEVEL SERIALIZABLE",
            _ => " ISOLATION LEVEL READ COMMITTED",
        });
    }
    match st.read_only {
        Some(true) => sql.push_str(" READ ONLY"),
        Some(false) => sql.push_str(" READ WRITE"),
        None => {}
    }
    match st.deferrable {
        Some(true) => sql.push_str(" DEFERRABLE"),
        Some(false) => sql.push_str(" NOT DEFERRABLE"),
        None => {}
    }
    sql
}


impl ConnCore {
    /// Checks a session out of this process's pool for `req` (`connect(**params)`).
    pub fn open(py: Python<'_>, req: ConnectRequest) -> PyResult<ConnCore> {
        let (spec, pool_spec, implicit_pool) = (req.spec, req.pool_spec, req.implicit_pool);
        let pool = pool::pool_for(&spec, &pool_spec).map_err(|e| errors::operational(py, e))?;
        // Checked when the pool was made.
        let target = crate::hosts::target_session_attrs(spec.target_session_attrs.as_deref())
            .unwrap_or(tokio_postgres::config::TargetSessionAttrs::Any);
        let (mut obj, mut overflow, mut recycled) = checkout(py, &pool, &pool_spec, implicit_pool, &spec)?;
        // CONN_HEALTH_CHECKS: prove a reused session with a round trip (an empty query).
        let mut tries = 0;
        while req.health_check && recycled && tries <= pool_spec.max_size {
            tries += 1;
            let alive = runtime::block_on(py, async { obj.client.simple_query("").await.is_ok() });
            if alive {
                break;
            }
            drop(Object::take(obj));
            pool.stats.discarded_dead.fetch_add(1, Ordering::Relaxed);
            (obj, overflow, recycled) = checkout(py, &pool, &pool_spec, implicit_pool, &spec)?;
        }
        Ok(ConnCore {
            owner_pid: runtime::current_pid(),
            session: Mutex::new(Some(Arc::new(obj))),
            state: Mutex::new(TxState {
                autocommit: req.autocommit,
                status: TxStatus::Idle,
                isolation_level: req.isolation_level,
                read_only: None,
                deferrable: None,
                dirty: false,
                unpoolable: false,
                closed: false,
            }),
            cursor_factory: Mutex::new(req.cursor_factory),
            adapters: Mutex::new(None),
            tz_replace: Mutex::new(Arc::new(TzReplace::Keep)),
            hstore_oid: AtomicU32::new(0),
            spec,
            pool,
            pool_spec,
            implicit_pool,
            overflow: AtomicBool::new(overflow),
            unproven: AtomicBool::new(recycled),
            lost: AtomicBool::new(false),
            reuse: req.reuse,
            reset_always: req.reset_always,
            prepare_threshold: req.prepare_threshold,
            target,
        })
    }
}

/// Waits this long or more for a pooled session, and the wait is logged.
const SLOW_CHECKOUT: Duration = Duration::from_secs(1);

/// A session from the pool: `(session, from the overflow, reused from idle)`.
///
/// Without OPTIONS["pool"] the user asked for Django's behaviour, where every thread gets
/// its own connection at once: above `max_size` an overflow session is opened (and closed
/// after use) rather than making the thread wait. An explicit pool keeps its bound.
fn checkout(
    py: Python<'_>,
    pool: &PoolHandle,
    pool_spec: &PoolSpec,
    implicit_pool: bool,
    spec: &ConnectSpec,
) -> PyResult<(PooledSession, bool, bool)> {
    let started = std::time::Instant::now();
    let min_size = pool_spec.min_size;
    let result = runtime::block_on(py, async {
        if min_size > 0 {
            pool::warm_up(&pool.pool, min_size).await;
        }
        if implicit_pool {
            let no_wait = Timeouts { wait: Some(Duration::ZERO), ..pool.pool.timeouts() };
            match pool.pool.timeout_get(&no_wait).await {
                Err(PoolError::Timeout(TimeoutType::Wait)) => return pool.overflow.get().await.map(|o| (o, true)),
                other => return other.map(|o| (o, false)),
            }
        }
        pool.pool.get().await.map(|o| (o, false))
    });
    let waited = started.elapsed();
    pool.stats.record_wait(waited);
    match result {
        Ok((obj, overflow)) => {
            pool.stats.checkouts.fetch_add(1, Ordering::Relaxed);
            if overflow {
                pool.stats.overflow_checkouts.fetch_add(1, Ordering::Relaxed);
            }
            if waited >= SLOW_CHECKOUT && !overflow {
                let s = pool.pool.status();
                let msg = format!(
                    "django_rustpg: waited {:.1}s for a pooled connection (max_size={}, in use {}, waiting {}): \
                     the pool may be too small for this process's concurrency",
                    waited.as_secs_f64(),
                    s.max_size,
                    s.size - s.available,
                    s.waiting
                );
                if let Ok(logger) = py.import("logging").and_then(|m| m.call_method1("getLogger", ("django_rustpg.pool",))) {
                    let _ = logger.call_method1("warning", (msg,));
                }
            }
            let recycled = Object::metrics(&obj).recycle_count > 0;
            Ok((obj, overflow, recycled))
        }
        Err(e) => {
            if matches!(e, PoolError::Timeout(TimeoutType::Wait)) {
                pool.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            let s = pool.pool.status();
            Err(errors::from_checkout(py, e, spec.host.as_deref(), spec.port.as_deref(), pool_spec.timeout, s.size, s.max_size))
        }
    }
}
