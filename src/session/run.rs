//! Running statements on the session: BEGIN pipelined in front when a transaction must open,
//! unnamed or prepared (`crate::prepared`), result formats from `crate::formats`; a stale
//! plan or a session the server ended while idle is retried where nothing can have happened.

use super::{ConnCore, TxStatus};
use crate::bind::{self, wire_params, BoundQuery};
use crate::errors;
use crate::formats;
use crate::pool::{self, PooledSession};
use crate::prepared;
use crate::runtime;
use crate::sql::classify::{self, ClientSide, TxEffect};
use postgres_types::ToSql;
use pyo3::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

/// What a statement returned.
pub struct Outcome {
    /// The rows not taken by an `EarlyRows`.
    pub rows: Vec<Row>,
    pub rows_affected: Option<u64>,
    /// The result format codes sent with Bind (see `crate::formats`).
    pub formats: crate::formats::Formats,
    /// Rows an `EarlyRows` took while the result was arriving, and the formats their
    /// columns want (for the staleness check that otherwise reads the first row).
    pub taken: usize,
    taken_columns: Option<formats::Formats>,
}

impl Outcome {
    fn new(rows: Vec<Row>, rows_affected: Option<u64>, formats: formats::Formats) -> Self {
        Outcome { rows, rows_affected, formats, taken: 0, taken_columns: None }
    }

    /// The formats the result's columns want (None for a result without rows).
    fn column_formats(&self) -> Option<formats::Formats> {
        self.rows.first().map(|first| formats::for_columns(first.columns())).or_else(|| self.taken_columns.clone())
    }
}

/// Rows received in batches of this many are offered to an `EarlyRows`.
pub const EARLY_BATCH: usize = 2048;

/// Takes a large result's rows while the rest are still arriving: what it builds from them
/// is built while the server produces the next rows (each on its own core) instead of
/// after the last one. The statement still returns only once the whole result is in.
pub trait EarlyRows: Send {
    /// A run starts (again, after a retry): forget anything taken before.
    fn restart(&mut self);
    /// `rows` (received so far, in the formats sent with Bind): drains them if it took
    /// them; leaves them, and is not asked again, if it did not (they are buffered as usual).
    fn take(&mut self, rows: &mut Vec<Row>, formats: &formats::Formats);
}

impl ConnCore {
    /// Runs one bound statement and buffers its rows (GIL released while waiting).
    pub fn run(&self, py: Python<'_>, q: &BoundQuery) -> PyResult<Outcome> {
        self.run_formats(py, q, None, None)
    }

    /// `run`, offering the rows to `early` as they arrive (bound statements only: the
    /// client-side and multi-statement paths buffer as usual).
    pub fn run_early(&self, py: Python<'_>, q: &BoundQuery, early: &mut (dyn EarlyRows + 'static)) -> PyResult<Outcome> {
        self.run_formats(py, q, None, Some(early))
    }

    /// The result formats for `sql` (described now unless remembered).
    pub fn result_formats(&self, py: Python<'_>, sql: &str, param_oids: &[u32]) -> PyResult<formats::Formats> {
        let db = formats::database_key(&self.spec);
        let session = self.session(py)?;
        if let Some(f) = formats::lookup(db, sql, param_oids, |oid| session.client.knows_type(oid)) {
            return Ok(f);
        }
        let types: Vec<Type> = param_oids.iter().map(|o| crate::bind::wire_type(*o)).collect();
        let described = runtime::block_on(py, async { session.client.prepare_typed(sql, &types).await })
            .map_err(|e| errors::from_pg(py, &e, Some(sql)))?;
        Ok(formats::store(db, sql, param_oids, described.columns()))
    }

    /// `run`, with the result formats given (a FETCH from a cursor declared for a described
    /// query) instead of found by describing `q`.
    pub fn run_formats(
        &self,
        py: Python<'_>,
        q: &BoundQuery,
        formats_hint: Option<formats::Formats>,
        mut early: Option<&mut (dyn EarlyRows + 'static)>,
    ) -> PyResult<Outcome> {
        let mut session = self.session(py)?;
        let mut unproven = self.unproven.swap(false, Ordering::Relaxed);
        let outside_transaction = self.state.lock().status == TxStatus::Idle;
        let stats = &self.pool.stats;
        // The server is known (ParameterStatus) not to have the session attributes asked
        // for: it gets no statement. Outside a transaction, a fresh session does.
        if !self.admits_target_now(py, &session) {
            if !outside_transaction {
                self.lost.store(true, Ordering::Relaxed);
                return Err(errors::operational(py, self.not_target_message()));
            }
            (session, unproven) = self.replace_session(py, &stats.discarded_read_only)?;
        }
        let mut replaced = 0;
        loop {
            match self.run_on_session(py, q, session.clone(), formats_hint.clone(), early.as_deref_mut()) {
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
                Ok(outcome) => {
                    self.keep_utf8(py, q, &session)?;
                    return Ok(outcome);
                }
                Err(e) => return Err(self.fail(py, &e, &q.sql, &session)),
            }
        }
    }

    /// The driver reads and writes UTF-8 only: a statement that set another client_encoding
    /// (which stock's psycopg would follow) is undone and refused, rather than let text be
    /// stored and read mangled.
    fn keep_utf8(&self, py: Python<'_>, q: &BoundQuery, session: &PooledSession) -> PyResult<()> {
        let may_set = q.effects.dirties_session || q.shape.keywords.first().is_some_and(|k| k == "SET" || k == "RESET");
        let Some(encoding) = may_set.then(|| session.shared.parameter("client_encoding")).flatten() else { return Ok(()) };
        if encoding.eq_ignore_ascii_case("UTF8") {
            return Ok(());
        }
        let reset = runtime::block_on(py, session.client.batch_execute("SET client_encoding TO 'UTF8'"));
        if reset.is_err() {
            self.lost.store(true, Ordering::Relaxed);
        }
        Err(errors::not_supported(
            py,
            format!("client_encoding {encoding} is not supported: the driver speaks UTF8 (the session was set back to UTF8)"),
        ))
    }

    fn fail(&self, py: Python<'_>, e: &tokio_postgres::Error, sql: &str, session: &PooledSession) -> PyErr {
        if is_lost_session(e) {
            self.lost.store(true, Ordering::Relaxed);
        }
        // Inside a transaction: the caller retries the transaction, on a new session.
        if self.refused_for_target(py, session, e) {
            self.lost.store(true, Ordering::Relaxed);
            let refusal = e.as_db_error().map(|d| d.message()).unwrap_or("read-only");
            return errors::operational(py, format!("{refusal}: {}", self.not_target_message()));
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
        mut early: Option<&mut (dyn EarlyRows + 'static)>,
    ) -> Result<Outcome, tokio_postgres::Error> {
        let begin = self.begin_for(q.effects);
        if q.effects.database_ddl {
            runtime::block_on(py, pool::close_idle_sessions());
        }
        let client_side = self.client_side_sql(q, formats_hint.is_some(), &session);
        let mut undone = false;
        let result = if let Some((sql, remembered)) = client_side {
            let outcome = runtime::block_on(py, async {
                let query = session.client.simple_query_first_result(&sql);
                let (rows, rows_affected) = match &begin {
                    Some(b) => {
                        let (began, ran) = tokio::join!(session.client.batch_execute(b), query);
                        began?;
                        ran?
                    }
                    None => query.await?,
                };
                Ok::<_, tokio_postgres::Error>(Outcome::new(rows, rows_affected, formats::all_text()))
            });
            // Columns no longer what the cached Describe said: describe next time.
            if let (Ok(outcome), Some(remembered)) = (&outcome, remembered) {
                if outcome.column_formats().is_some_and(|f| *f != *remembered) {
                    let oids: Vec<u32> = q.params.iter().map(|p| p.oid).collect();
                    formats::forget(formats::database_key(&self.spec), &q.sql, &oids);
                }
            }
            outcome
        } else if q.shape.multi_statement {
            runtime::block_on(py, async {
                if let Some(b) = &begin {
                    session.client.batch_execute(b).await?;
                }
                // Simple protocol, as psycopg's client-side binding: one implicit transaction,
                // the first statement's result (text format).
                let (rows, rows_affected) = session.client.simple_query_first_result(&q.sql).await?;
                Ok::<_, tokio_postgres::Error>(Outcome::new(rows, rows_affected, formats::all_text()))
            })
        } else {
            let params = wire_params(&q.params);
            let sql = q.sql.as_str();
            let oids: Vec<u32> = q.params.iter().map(|p| p.oid).collect();
            let preparing = self.prepare_threshold.filter(|_| !q.effects.unpoolable && !self.pool.stats.prepared_off.load(Ordering::Relaxed));
            let route = match preparing {
                Some(threshold) => session.shared.statements.lock().route(sql, &oids, threshold),
                None => prepared::Route::Unnamed,
            };
            let was_prepared = matches!(route, prepared::Route::Prepared(_));
            let named = !matches!(route, prepared::Route::Unnamed);
            let outside_transaction = begin.is_none() && self.state.lock().status == TxStatus::Idle;
            let db = formats::database_key(&self.spec);
            let hinted = formats_hint.is_some();
            let want = match (formats_hint, classify::result_rows(&q.shape, sql)) {
                (Some(f), _) => Want::Known(f),
                (None, classify::Rows::None) => Want::Known(formats::all_binary()),
                (None, classify::Rows::ByText) => match formats::lookup(db, sql, &oids, |oid| session.client.knows_type(oid)) {
                    Some(f) => Want::Known(f),
                    None => Want::Describe(Some(db)),
                },
                (None, classify::Rows::Varying) => Want::Describe(None),
            };
            // Untyped values where the server may not infer a type: inside a transaction,
            // the first run of a statement goes in a savepoint, so a "could not determine
            // data type" (42P18, raised before anything runs) can be undone and the cursor
            // can send literals instead, as stock does (`UntypedGuard`).
            let guard = UntypedGuard::new(self, q, begin.as_deref(), db, &oids);
            let pre = guard.as_ref().map(|g| g.pre.as_str()).or(begin.as_deref());
            let result = runtime::block_on(py, run_single(&session, sql, &params, &oids, route, pre, want.clone(), early.as_deref_mut()));
            let result = match guard {
                Some(g) => {
                    let (result, was_undone) = g.settle(py, &session, result);
                    undone = was_undone;
                    result
                }
                None => result,
            };
            match result {
                // Another session's DDL changed this prepared statement's row type. Outside
                // a transaction the failed run had no effect: prepare it again and retry.
                Err(e) if was_prepared && outside_transaction && is_stale_plan(&e) => {
                    session.shared.statements.lock().forget(sql, &oids);
                    runtime::block_on(py, run_single(&session, sql, &params, &oids, prepared::Route::Prepare, None, want, early.as_deref_mut()))
                }
                // A cached format asked binary of a type that has none (its column's type
                // changed): the run failed before doing anything; outside a transaction, describe again.
                Err(e) if formats::is_binary_refused(&e) => {
                    formats::forget(db, sql, &oids);
                    if outside_transaction && matches!(want, Want::Known(_)) && !hinted {
                        runtime::block_on(py, run_single(&session, sql, &params, &oids, prepared::Route::Unnamed, None, Want::Describe(Some(db)), early.as_deref_mut()))
                    } else {
                        Err(e)
                    }
                }
                Ok(outcome) => {
                    // Columns no longer what the cached Describe said: describe next time.
                    if let Some(columns) = outcome.column_formats() {
                        if matches!(want, Want::Known(_)) && *columns != *outcome.formats {
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
                        runtime::block_on(py, run_single(&session, sql, &params, &oids, prepared::Route::Unnamed, None, want, early.as_deref_mut()))
                    } else {
                        Err(e)
                    }
                }
                other => other,
            }
        };
        if q.effects.changes_schema {
            formats::forget_database(formats::database_key(&self.spec));
            bind::forget_untyped_parsed();
        }
        // A guarded run undone: the transaction is as it was before the statement.
        self.after(q.effects, result.is_ok() || undone);
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
}

impl ConnCore {
    /// The statement as one simple-protocol Query (values as literals, text results), where
    /// that is the same statement and its results decode to the same objects, and the
    /// formats remembered for it (FewRows); None to bind it.
    fn client_side_sql(&self, q: &BoundQuery, hinted: bool, session: &PooledSession) -> Option<(String, Option<formats::Formats>)> {
        // Prepared plans beat both; a FETCH's formats come from its DECLARE.
        if hinted || self.prepare_threshold.is_some() || q.shape.multi_statement {
            return None;
        }
        let remembered = match q.effects.client_side {
            ClientSide::Never => return None,
            ClientSide::NoRows => None,
            ClientSide::FewRows => {
                let oids: Vec<u32> = q.params.iter().map(|p| p.oid).collect();
                let f = formats::lookup_text_safe(formats::database_key(&self.spec), &q.sql, &oids, |oid| session.client.knows_type(oid))?;
                // Dates and timestamps are read back as DateStyle ISO writes them.
                if !session.shared.parameter("DateStyle").is_some_and(|s| s.starts_with("ISO")) {
                    return None;
                }
                Some(f)
            }
        };
        Some((q.client_side_sql()?, remembered))
    }
}

/// The savepoint a guarded first run goes in, and how it ends.
const UNTYPED_SAVEPOINT: &str = "SAVEPOINT _rustpg_untyped";
const UNTYPED_RELEASE: &str = "RELEASE SAVEPOINT _rustpg_untyped";
const UNTYPED_UNDO: &str = "ROLLBACK TO SAVEPOINT _rustpg_untyped; RELEASE SAVEPOINT _rustpg_untyped";

/// A statement with untyped values where the server is not known to infer their types
/// (`BoundQuery::untyped_unsure`), run inside a transaction before it was seen to parse
/// with them bound: `pre` (BEGIN if due, then SAVEPOINT) is pipelined in front of it.
struct UntypedGuard {
    key: u64,
    pre: String,
}

impl UntypedGuard {
    fn new(core: &ConnCore, q: &BoundQuery, begin: Option<&str>, db: u64, oids: &[u32]) -> Option<Self> {
        if !q.untyped_unsure || q.effects.tx != TxEffect::None {
            return None;
        }
        // Autocommit outside a transaction: a failed statement leaves nothing to undo
        // (the cursor retries it). An aborted transaction fails the statement anyway.
        if begin.is_none() && core.state.lock().status != TxStatus::InTrans {
            return None;
        }
        let key = bind::untyped_parse_key(db, &q.sql, oids);
        if bind::untyped_parsed(key) {
            return None;
        }
        let pre = match begin {
            Some(b) => format!("{b}; {UNTYPED_SAVEPOINT}"),
            None => UNTYPED_SAVEPOINT.to_owned(),
        };
        Some(UntypedGuard { key, pre })
    }

    /// Releases the savepoint after a run that parsed. After 42P18 rolls back to it: the
    /// transaction is as before, and the cursor runs the statement again with literals.
    /// Any other error is left as it is: the transaction is aborted, as with stock.
    /// Returns the result and whether the failed statement was undone.
    fn settle(
        self,
        py: Python<'_>,
        session: &PooledSession,
        result: Result<Outcome, tokio_postgres::Error>,
    ) -> (Result<Outcome, tokio_postgres::Error>, bool) {
        match &result {
            Ok(_) => {
                bind::untyped_parse_seen(self.key);
                if let Err(e) = runtime::block_on(py, session.client.batch_execute(UNTYPED_RELEASE)) {
                    return (Err(e), false);
                }
                (result, false)
            }
            Err(e) if e.code() == Some(&SqlState::INDETERMINATE_DATATYPE) => {
                let undone = runtime::block_on(py, session.client.batch_execute(UNTYPED_UNDO)).is_ok();
                (result, undone)
            }
            Err(_) => (result, false),
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
/// unnamed, or by a prepared statement (prepared first when `route` says so), with `BEGIN`
/// pipelined in front when given.
async fn run_single(
    session: &PooledSession,
    sql: &str,
    params: &[(crate::bind::Wire<'_>, Type)],
    oids: &[u32],
    route: prepared::Route,
    begin: Option<&str>,
    want: Want,
    early: Option<&mut (dyn EarlyRows + 'static)>,
) -> Result<Outcome, tokio_postgres::Error> {
    let client = &session.client;
    let query = async {
        let types = || params.iter().map(|(_, t)| t.clone()).collect::<Vec<Type>>();
        let statement = match route {
            prepared::Route::Unnamed => None,
            prepared::Route::Prepared(statement) => Some(statement),
            // A statement that cannot be prepared (a syntax error, an aborted transaction)
            // runs unnamed below and fails there with its own error; a later run tries again.
            prepared::Route::Prepare => {
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
                match db {
                    Some(db) => formats::store(db, sql, oids, described.columns()),
                    None => formats::for_columns(described.columns()),
                }
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
        collect(stream, formats, early).await
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

async fn collect(
    stream: tokio_postgres::RowStream,
    formats: formats::Formats,
    mut early: Option<&mut (dyn EarlyRows + 'static)>,
) -> Result<Outcome, tokio_postgres::Error> {
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    let (mut taken, mut taken_columns) = (0, None);
    if let Some(early) = early.as_deref_mut() {
        early.restart();
    }
    while let Some(row) = stream.next().await {
        rows.push(row?);
        if rows.len() >= EARLY_BATCH {
            if let Some(sink) = early.as_deref_mut() {
                if taken_columns.is_none() {
                    taken_columns = Some(formats::for_columns(rows[0].columns()));
                }
                let offered = rows.len();
                sink.take(&mut rows, &formats);
                taken += offered - rows.len();
                if rows.len() == offered {
                    early = None;
                }
            }
        }
    }
    Ok(Outcome { rows, rows_affected: stream.rows_affected(), formats, taken, taken_columns })
}
