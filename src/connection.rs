//! The PEP 249 connection: a session checked out of the pool, plus the transaction state
//! that Django drives (autocommit, commit/rollback, isolation level).

use crate::bind::{wire_params, BoundQuery};
use crate::errors;
use crate::formats;
use crate::pool::{self, ConnectSpec, PoolHandle, PoolSpec, PooledSession};
use crate::prepared;
use crate::runtime;
use crate::sql::classify::{self, Effects, TxEffect};
use crate::types::decode::TzReplace;
use crate::types::pyrefs;
use deadpool::managed::{Object, PoolError, TimeoutType, Timeouts};
use parking_lot::Mutex;
use postgres_types::ToSql;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

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
    session: Mutex<Option<Arc<PooledSession>>>,
    pub state: Mutex<TxState>,
    pub cursor_factory: Mutex<Option<PyObject>>,
    adapters: Mutex<Option<PyObject>>,
    pub tz_replace: Mutex<Arc<TzReplace>>,
    hstore_oid: AtomicU32,
    pub spec: ConnectSpec,
    pool: PoolHandle,
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
    target: TargetSessionAttrs,
}

/// What a statement returned.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub rows_affected: Option<u64>,
    /// The result format codes sent with Bind (see `crate::formats`).
    pub formats: crate::formats::Formats,
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

    /// Before a statement: the BEGIN to send first, if a transaction must be opened.
    fn begin_for(&self, effects: Effects) -> Option<String> {
        let mut st = self.state.lock();
        if st.autocommit || st.status != TxStatus::Idle || effects.tx == TxEffect::Begin {
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
                TxEffect::None => {}
            }
        } else if st.status == TxStatus::InTrans && effects.tx != TxEffect::End {
            st.status = TxStatus::InError;
        } else if effects.tx == TxEffect::End {
            st.status = TxStatus::Idle;
        }
    }

    /// Runs one bound statement and buffers its rows (GIL released while waiting).
    pub fn run(&self, py: Python<'_>, q: &BoundQuery) -> PyResult<Outcome> {
        self.run_formats(py, q, None)
    }

    /// The result formats for `sql` (described now unless remembered).
    pub fn result_formats(&self, py: Python<'_>, sql: &str, param_oids: &[u32]) -> PyResult<formats::Formats> {
        let db = formats::database_key(&self.spec);
        if let Some(f) = formats::lookup(db, sql, param_oids) {
            return Ok(f);
        }
        let session = self.session(py)?;
        let types: Vec<Type> = param_oids.iter().map(|o| crate::bind::wire_type(*o)).collect();
        let described = runtime::block_on(py, async { session.client.prepare_typed(sql, &types).await })
            .map_err(|e| errors::from_pg(py, &e, Some(sql)))?;
        let f = formats::for_columns(described.columns());
        formats::store(db, sql, param_oids, f.clone());
        Ok(f)
    }

    /// `run`, with the result formats given (a FETCH from a cursor declared for a described
    /// query) instead of found by describing `q`.
    pub fn run_formats(&self, py: Python<'_>, q: &BoundQuery, formats_hint: Option<formats::Formats>) -> PyResult<Outcome> {
        let mut session = self.session(py)?;
        let mut unproven = self.unproven.swap(false, Ordering::Relaxed);
        let outside_transaction = self.state.lock().status == TxStatus::Idle;
        let stats = &self.pool.stats;
        // The server is known (ParameterStatus) not to have the session attributes asked
        // for: it gets no statement. Outside a transaction, a fresh session does.
        if !self.admits_target(&session) {
            if !outside_transaction {
                self.lost.store(true, Ordering::Relaxed);
                return Err(errors::operational(py, self.not_target_message()));
            }
            (session, unproven) = self.replace_session(py, &stats.discarded_read_only)?;
        }
        let mut replaced = 0;
        loop {
            match self.run_on_session(py, q, session.clone(), formats_hint.clone()) {
                // The pooled session was ended by the server (restart, pg_terminate_backend)
                // while idle, before it could run this statement: outside a transaction
                // nothing can have happened, so run it on a fresh session, as stock
                // Django's fresh connection per request would. Several idle sessions may
                // have died at once: a replacement that also sat idle gets the same rule.
                Err(e) if unproven && outside_transaction && is_lost_session(&e) && replaced <= self.pool_spec.max_size => {
                    replaced += 1;
                    (session, unproven) = self.replace_session(py, &stats.discarded_dead)?;
                    self.state.lock().status = TxStatus::Idle;
                }
                // Refused as read-only by a server that no longer has the attributes asked
                // for (turned read-only, a standby): the refused statement did nothing, so
                // outside a transaction it runs on a fresh session, which connects through
                // the host list again.
                Err(e) if outside_transaction && replaced <= self.pool_spec.max_size && self.refused_for_target(py, &session, &e) => {
                    replaced += 1;
                    (session, unproven) = self.replace_session(py, &stats.discarded_read_only)?;
                    self.state.lock().status = TxStatus::Idle;
                }
                other => return other.map_err(|e| self.fail(py, &e, &q.sql, &session)),
            }
        }
    }

    /// False when the session's server reported a state `target_session_attrs` refuses. A
    /// session that changed its own settings (SET default_transaction_read_only) is judged
    /// by `in_hot_standby` alone: its read-only state may be its own doing.
    fn admits_target(&self, session: &PooledSession) -> bool {
        let own_settings = self.state.lock().dirty;
        pool::admits_target(session, self.target, own_settings)
    }

    /// A read-only refusal (25006) under a target that needs a writable server, by a server
    /// known (after the refusal) not to be one.
    fn refused_for_target(&self, py: Python<'_>, session: &PooledSession, e: &tokio_postgres::Error) -> bool {
        if !matches!(self.target, TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary)
            || e.code() != Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
        {
            return false;
        }
        // The ParameterStatus that says so comes with the refusal's ReadyForQuery.
        runtime::block_on(py, pool::observe_idle_sockets());
        !self.admits_target(session)
    }

    fn not_target_message(&self) -> String {
        let target = self.spec.target_session_attrs.as_deref().unwrap_or("any");
        format!(
            "the server of this session no longer has target_session_attrs={target} (it is read-only or in \
             hot standby): the session is discarded; retry the transaction on a new connection"
        )
    }

    fn fail(&self, py: Python<'_>, e: &tokio_postgres::Error, sql: &str, session: &PooledSession) -> PyErr {
        if is_lost_session(e) {
            self.lost.store(true, Ordering::Relaxed);
        }
        // Inside a transaction: the caller retries the transaction, on a new session.
        if self.refused_for_target(py, session, e) {
            self.lost.store(true, Ordering::Relaxed);
            return errors::operational(py, format!("{}: {}", e.as_db_error().map(|d| d.message()).unwrap_or(""), self.not_target_message()));
        }
        if self.prepare_threshold.is_some() && is_pooler_statement_error(e) {
            return errors::operational(
                py,
                format!(
                    "{}: the server session lost this session's prepared statements inside a \
                     transaction (a transaction-mode pooler such as PgBouncer < 1.21 in front?); \
                     prepared statements are now off for this pool. Retry the transaction, and set \
                     prepare_threshold=None or PgBouncer's max_prepared_statements",
                    e.as_db_error().map(|d| d.message()).unwrap_or("prepared statement missing")
                ),
            );
        }
        errors::from_pg(py, e, Some(sql))
    }

    fn run_on_session(
        &self,
        py: Python<'_>,
        q: &BoundQuery,
        session: Arc<PooledSession>,
        formats_hint: Option<formats::Formats>,
    ) -> Result<Outcome, tokio_postgres::Error> {
        let begin = self.begin_for(q.effects);
        if q.effects.database_ddl {
            runtime::block_on(py, pool::close_idle_sessions());
        }
        let result = if q.shape.multi_statement {
            runtime::block_on(py, async {
                if let Some(b) = &begin {
                    session.client.batch_execute(b).await?;
                }
                // Simple protocol, as psycopg's client-side binding: one implicit transaction,
                // the first statement's result (text format).
                let (rows, rows_affected) = session.client.simple_query_first_result(&q.sql).await?;
                Ok::<_, tokio_postgres::Error>(Outcome { rows, rows_affected, formats: std::sync::Arc::from([0i16]) })
            })
        } else {
            let params = wire_params(&q.params);
            let sql = q.sql.as_str();
            let oids: Vec<u32> = q.params.iter().map(|p| p.oid).collect();
            let preparing = self.prepare_threshold.filter(|_| !q.effects.unpoolable && !self.pool.stats.prepared_off.load(Ordering::Relaxed));
            let plan = match preparing {
                Some(threshold) => session.shared.statements.lock().plan(sql, &oids, threshold),
                None => prepared::Plan::Unnamed,
            };
            let was_prepared = matches!(plan, prepared::Plan::Prepared(_));
            let named = !matches!(plan, prepared::Plan::Unnamed);
            let outside_transaction = begin.is_none() && self.state.lock().status == TxStatus::Idle;
            let db = formats::database_key(&self.spec);
            let hinted = formats_hint.is_some();
            let want = match (formats_hint, classify::result_rows(&q.shape, sql)) {
                (Some(f), _) => Want::Known(f),
                (None, classify::Rows::None) => Want::Known(formats::all_binary()),
                (None, classify::Rows::ByText) => match formats::lookup(db, sql, &oids) {
                    Some(f) => Want::Known(f),
                    None => Want::Describe(Some(db)),
                },
                (None, classify::Rows::Varying) => Want::Describe(None),
            };
            let result = runtime::block_on(py, run_single(&session, sql, &params, &oids, plan, begin.as_deref(), want.clone()));
            match result {
                // Another session's DDL changed this prepared statement's row type. Outside
                // a transaction the failed run had no effect: prepare it again and retry.
                Err(e) if was_prepared && outside_transaction && is_stale_plan(&e) => {
                    session.shared.statements.lock().forget(sql, &oids);
                    runtime::block_on(py, run_single(&session, sql, &params, &oids, prepared::Plan::Prepare, None, want))
                }
                // A cached format asked binary of a type that has none (its column's type
                // changed): the run failed before doing anything; outside a transaction, describe again.
                Err(e) if formats::is_binary_refused(&e) => {
                    formats::forget(db, sql, &oids);
                    if outside_transaction && matches!(want, Want::Known(_)) && !hinted {
                        runtime::block_on(py, run_single(&session, sql, &params, &oids, prepared::Plan::Unnamed, None, Want::Describe(Some(db))))
                    } else {
                        Err(e)
                    }
                }
                Ok(outcome) => {
                    // Columns no longer what the cached Describe said: describe next time.
                    if let Some(first) = outcome.rows.first() {
                        if matches!(want, Want::Known(_)) && *formats::for_columns(first.columns()) != *outcome.formats {
                            formats::forget(db, sql, &oids);
                        }
                    }
                    Ok(outcome)
                }
                // The server session does not hold what this session prepared: a
                // transaction-mode pooler moved us. Stop preparing on this pool; outside a
                // transaction the failed run had no effect, so run it unnamed.
                Err(e) if named && is_pooler_statement_error(&e) => {
                    self.prepared_statements_lost(py);
                    session.shared.statements.lock().clear();
                    if outside_transaction {
                        runtime::block_on(py, run_single(&session, sql, &params, &oids, prepared::Plan::Unnamed, None, want))
                    } else {
                        Err(e)
                    }
                }
                other => other,
            }
        };
        if q.effects.changes_schema {
            formats::forget_database(formats::database_key(&self.spec));
        }
        self.after(q.effects, result.is_ok());
        // Keep the prepared statements valid: DDL or DISCARD/DEALLOCATE on this session
        // forgets them all; a statement whose plan no longer fits (another session's DDL)
        // or whose name the server lost is forgotten, so the next run prepares it again.
        if self.prepare_threshold.is_some() {
            if q.effects.unpoolable || q.effects.changes_schema {
                session.shared.statements.lock().clear();
            } else if let Err(e) = &result {
                if is_stale_plan(e) || e.code() == Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME) {
                    let oids: Vec<u32> = q.params.iter().map(|p| p.oid).collect();
                    session.shared.statements.lock().forget(&q.sql, &oids);
                }
            }
        }
        result
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
        let effects =
            Effects { tx: TxEffect::None, dirties_session: false, database_ddl: false, unpoolable: false, changes_schema: false };
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

/// How `run_single` gets the result formats for Bind.
#[derive(Clone)]
enum Want {
    Known(formats::Formats),
    /// Describe first (one more round trip); remember the answer for this database if given.
    Describe(Option<u64>),
}

/// One single-statement round trip (two when the statement must be described first):
/// unnamed, or by a prepared statement (prepared first when `plan` says so), with `BEGIN`
/// pipelined in front when given.
async fn run_single(
    session: &PooledSession,
    sql: &str,
    params: &[(crate::bind::Wire<'_>, Type)],
    oids: &[u32],
    plan: prepared::Plan,
    begin: Option<&str>,
    want: Want,
) -> Result<Outcome, tokio_postgres::Error> {
    let client = &session.client;
    let query = async {
        let types = || params.iter().map(|(_, t)| t.clone()).collect::<Vec<Type>>();
        let statement = match plan {
            prepared::Plan::Unnamed => None,
            prepared::Plan::Prepared(statement) => Some(statement),
            // A statement that cannot be prepared (a syntax error, an aborted transaction)
            // runs unnamed below and fails there with its own error; a later run tries again.
            prepared::Plan::Prepare => {
                let statement = client.prepare_typed(sql, &types()).await.ok();
                if let Some(statement) = &statement {
                    session.shared.statements.lock().insert(sql, oids, statement.clone());
                }
                statement
            }
        };
        let formats = match (&statement, want) {
            (Some(statement), _) => formats::for_columns(statement.columns()),
            (None, Want::Known(f)) => f,
            // The Describe fails exactly where the statement would (same text, same types).
            (None, Want::Describe(db)) => {
                let described = client.prepare_typed(sql, &types()).await?;
                let f = formats::for_columns(described.columns());
                if let Some(db) = db {
                    formats::store(db, sql, oids, f.clone());
                }
                f
            }
        };
        let stream = match &statement {
            Some(statement) => {
                client
                    .query_raw_with_result_formats(statement, params.iter().map(|(w, _)| w as &(dyn ToSql + Sync)), &formats)
                    .await?
            }
            None => {
                client
                    .query_typed_raw_with_result_formats(
                        sql,
                        params.iter().map(|(w, t)| (w as &(dyn ToSql + Sync), t.clone())),
                        &formats,
                    )
                    .await?
            }
        };
        let mut outcome = collect(stream).await?;
        outcome.formats = formats;
        Ok(outcome)
    };
    match begin {
        // Pipelined: BEGIN and the statement (or its Describe) leave in one write.
        Some(b) => {
            let (began, outcome) = tokio::join!(client.batch_execute(b), query);
            began?;
            outcome
        }
        None => query.await,
    }
}

/// The server ended the session (shutdown, restart, pg_terminate_backend) or the socket
/// is gone: what a pooled session that died while idle fails with.
fn is_lost_session(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        return matches!(db.code().code(), "57P01" | "57P02" | "57P03");
    }
    errors::io_cause(e).is_some()
}

/// 26000 (no such prepared statement) or 42P05 (one already has that name).
fn is_pooler_statement_error(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| matches!(db.code().code(), "26000" | "42P05"))
}

/// "cached plan must not change result type": a prepared statement outlived a schema change.
fn is_stale_plan(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED && db.message().contains("cached plan")
    })
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

async fn collect(stream: tokio_postgres::RowStream) -> Result<Outcome, tokio_postgres::Error> {
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        rows.push(row?);
    }
    Ok(Outcome { rows, rows_affected: stream.rows_affected(), formats: crate::formats::all_binary() })
}

#[pyclass(module = "django_rustpg._native", subclass, frozen)]
pub struct Connection {
    pub core: Arc<ConnCore>,
}

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
        let (_, tls) = pool::build_config(&self.core.spec).map_err(|e| errors::operational(py, e))?;
        let spec = &self.core.spec;
        runtime::block_on(py, crate::cancel::cancel(token, spec, tls)).map_err(|e| errors::operational(py, e))
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

    #[getter]
    fn host(&self) -> Option<String> {
        self.core.spec.host.clone()
    }

    #[getter]
    fn port(&self) -> Option<String> {
        self.core.spec.port.clone()
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

fn opt_str(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<String>> {
    match d.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(v.str()?.to_string())),
    }
}

fn secs(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Duration> {
    let f: f64 = v.extract().map_err(|_| errors::programming(v.py(), format!("pool option '{key}' must be a number of seconds")))?;
    if !(f >= 0.0 && f.is_finite()) {
        return Err(errors::programming(v.py(), format!("pool option '{key}' must be a non-negative number of seconds")));
    }
    Ok(Duration::from_secs_f64(f))
}

/// `kw` with the keys of its service (`service`, else PGSERVICE) added where `kw` has none.
fn with_service<'py>(py: Python<'py>, kw: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let merged = kw.copy()?;
    let Some(name) = opt_str(kw, "service")?.or_else(|| std::env::var("PGSERVICE").ok()) else {
        return Ok(merged);
    };
    let pairs = crate::service_file::lookup(&name).map_err(|e| errors::operational(py, e))?;
    for (key, value) in pairs {
        if !SERVICE_FILE_KEYWORDS.contains(&key.as_str()) {
            return Err(errors::operational(py, format!("invalid connection option \"{key}\"")));
        }
        if opt_str(kw, &key)?.is_none() {
            merged.set_item(key, value)?;
        }
    }
    Ok(merged)
}

/// Keys a service file may set (connection parameters, not the driver's own options).
const SERVICE_FILE_KEYWORDS: [&str; 16] = [
    "dbname", "user", "password", "host", "port", "options", "application_name", "sslmode", "sslrootcert",
    "connect_timeout", "hostaddr", "target_session_attrs", "load_balance_hosts", "keepalives", "keepalives_idle",
    "sslcert",
];

const KNOWN_KEYWORDS: [&str; 27] = [
    "health_check",
    "dbname", "user", "password", "host", "port", "options", "application_name", "sslmode", "sslrootcert",
    "connect_timeout", "client_encoding", "timezone", "pool", "reset_on_return", "autocommit", "cursor_factory",
    "context", "prepare_threshold", "isolation_level", "hostaddr", "service", "target_session_attrs", "keepalives",
    "keepalives_idle", "sslcert", "load_balance_hosts",
];

struct ConnectRequest {
    spec: ConnectSpec,
    pool_spec: PoolSpec,
    implicit_pool: bool,
    health_check: bool,
    reuse: bool,
    reset_always: bool,
    autocommit: bool,
    isolation_level: Option<i64>,
    cursor_factory: Option<PyObject>,
    prepare_threshold: Option<u32>,
}

fn parse_connect(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<ConnectRequest> {
    let empty = PyDict::new(py);
    let kw = kwargs.unwrap_or(&empty);
    for key in kw.keys() {
        let k: String = key.extract()?;
        if !KNOWN_KEYWORDS.contains(&k.as_str()) {
            return Err(errors::programming(py, format!("invalid connection option \"{k}\"")));
        }
    }
    let kw = &with_service(py, kw)?;
    if let Some(enc) = opt_str(kw, "client_encoding")? {
        let norm = enc.to_ascii_lowercase().replace(['-', '_'], "");
        if norm != "utf8" && norm != "unicode" {
            return Err(errors::not_supported(py, format!("client_encoding {enc} is not supported: the driver speaks UTF8")));
        }
    }
    let options = opt_str(kw, "options")?.unwrap_or_default();
    let spec = ConnectSpec {
        host: opt_str(kw, "host")?.or_else(|| std::env::var("PGHOST").ok()),
        port: opt_str(kw, "port")?.or_else(|| std::env::var("PGPORT").ok()),
        user: opt_str(kw, "user")?,
        password: opt_str(kw, "password")?.or_else(|| std::env::var("PGPASSWORD").ok()),
        dbname: opt_str(kw, "dbname")?.or_else(|| std::env::var("PGDATABASE").ok()),
        options: if options.is_empty() { None } else { Some(options) },
        application_name: opt_str(kw, "application_name")?,
        sslmode: opt_str(kw, "sslmode")?.or_else(|| std::env::var("PGSSLMODE").ok()).unwrap_or_else(|| "prefer".into()),
        sslrootcert: opt_str(kw, "sslrootcert")?,
        timezone: opt_str(kw, "timezone")?,
        connect_timeout: match opt_str(kw, "connect_timeout")? {
            None => None,
            Some(t) => Some(t.parse().map_err(|_| errors::programming(py, format!("invalid connect_timeout: {t}")))?),
        },
        hostaddr: opt_str(kw, "hostaddr")?.or_else(|| std::env::var("PGHOSTADDR").ok()),
        target_session_attrs: opt_str(kw, "target_session_attrs")?.or_else(|| std::env::var("PGTARGETSESSIONATTRS").ok()),
        load_balance_hosts: opt_str(kw, "load_balance_hosts")?.or_else(|| std::env::var("PGLOADBALANCEHOSTS").ok()),
    };
    let mut pool_spec = PoolSpec::default();
    let mut reuse = true;
    if let Some(p) = kw.get_item("pool")? {
        if let Ok(d) = p.downcast::<PyDict>() {
            for (k, v) in d.iter() {
                let k: String = k.extract()?;
                match k.as_str() {
                    "min_size" => pool_spec.min_size = v.extract()?,
                    "max_size" => pool_spec.max_size = v.extract()?,
                    "timeout" => pool_spec.timeout = secs(&v, &k)?,
                    "max_lifetime" => pool_spec.max_lifetime = Some(secs(&v, &k)?),
                    "max_idle" => pool_spec.max_idle = Some(secs(&v, &k)?),
                    other => return Err(errors::programming(py, format!("unknown pool option \"{other}\""))),
                }
            }
            if pool_spec.max_size == 0 || pool_spec.min_size > pool_spec.max_size {
                return Err(errors::programming(py, "pool max_size must be at least 1 and at least min_size"));
            }
        } else if !p.is_truthy()? {
            reuse = false;
        }
    }
    let reset_always = match opt_str(kw, "reset_on_return")?.as_deref() {
        None | Some("auto") => false,
        Some("always") => true,
        Some(other) => return Err(errors::programming(py, format!("reset_on_return must be 'auto' or 'always', not {other:?}"))),
    };
    let autocommit = match kw.get_item("autocommit")? {
        Some(v) => v.is_truthy()?,
        None => false,
    };
    let isolation_level = match kw.get_item("isolation_level")? {
        Some(v) if !v.is_none() => Some(v.extract::<i64>()?),
        _ => None,
    };
    let cursor_factory = kw.get_item("cursor_factory")?.filter(|f| !f.is_none()).map(|f| f.unbind());
    let prepare_threshold = match kw.get_item("prepare_threshold")? {
        Some(v) if !v.is_none() => Some(
            v.extract::<u32>()
                .map_err(|_| errors::programming(py, "prepare_threshold must be None or a non-negative integer"))?,
        ),
        _ => None,
    };

    let implicit_pool = kw.get_item("pool")?.is_none();
    let health_check = match kw.get_item("health_check")? {
        Some(v) => v.is_truthy()?,
        None => false,
    };
    Ok(ConnectRequest {
        spec,
        pool_spec,
        implicit_pool,
        health_check,
        reuse,
        reset_always,
        autocommit,
        isolation_level,
        cursor_factory,
        prepare_threshold,
    })
}

/// `connect(**params)`: checks a session out of this process's pool for these parameters.
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn connect(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Connection> {
    let req = parse_connect(py, kwargs)?;
    let (spec, pool_spec, implicit_pool) = (req.spec, req.pool_spec, req.implicit_pool);
    let spec_target = spec.target_session_attrs.clone();
    let pool = pool::pool_for(&spec, &pool_spec).map_err(|e| errors::operational(py, e))?;
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
    let core = ConnCore {
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
        target: crate::hosts::target_session_attrs(spec_target.as_deref()).unwrap_or(TargetSessionAttrs::Any),
    };
    Ok(Connection { core: Arc::new(core) })
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
