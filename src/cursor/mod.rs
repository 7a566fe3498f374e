//! The PEP 249 cursor: binds, runs, and turns buffered binary rows into Python rows on
//! fetch. Named cursors are server-side (DECLARE / FETCH FORWARD / CLOSE).

use crate::bind::{self, wire_type, BoundQuery};
use crate::errors;
use crate::early_build::{self, Built};
use crate::row::{col_infos, column_decoders, convert_consuming, describe, release_consumed, row_dict, row_tuple, ColInfo, RELEASE_ABOVE, RELEASE_EVERY};
use crate::runtime;
use crate::materialize::MaterializePlan;
use crate::session::{ConnCore, Connection};
use crate::sql::classify;
use crate::sql::literal::quote_identifier;
use crate::types::decode::{DecodeCtx, Decoder, TzReplace};
use named::Named;
use postgres_types::Type;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio_postgres::Row;

mod many;
mod named;

#[pyclass(module = "django_rustpg._native", subclass)]
pub struct Cursor {
    #[pyo3(get)]
    connection: Py<Connection>,
    core: Arc<ConnCore>,
    closed: bool,
    rows: VecDeque<Row>,
    decoders: Vec<Decoder>,
    columns: Option<Vec<ColInfo>>,
    /// For an empty result: what to Describe if `description` is asked for.
    describe: Option<(String, Vec<u32>)>,
    description: Option<PyObject>,
    #[pyo3(get)]
    rowcount: i64,
    /// The count the last statement's command tag carries (None: `CREATE TABLE`, `SHOW`...).
    tag_count: Option<i64>,
    #[pyo3(get, set)]
    arraysize: usize,
    #[pyo3(get, set)]
    itersize: usize,
    #[pyo3(get)]
    rownumber: Option<usize>,
    last_sql: Option<String>,
    /// The query and parameters as last given to execute(), for last_executed_query().
    last_given: Option<(PyObject, Option<PyObject>)>,
    tz_name: Option<String>,
    named: Option<Named>,
    /// Rows handed out by `take(Some(_))` since memory was last released.
    taken_since_release: usize,
    /// For the next execute: `Some(hook)` returns the plan (or None) that builds its rows as
    /// they arrive; `Some(None)`: they are fetched with fetch_plan, build nothing early.
    plan_hook: Option<Option<PyObject>>,
    /// Objects a plan built while the result arrived, ahead of `rows`.
    early: Option<Built>,
}

impl Cursor {
    pub fn new(conn: Py<Connection>, core: Arc<ConnCore>, name: Option<String>, scrollable: Option<bool>, withhold: bool) -> Self {
        Cursor {
            connection: conn,
            core,
            closed: false,
            rows: VecDeque::new(),
            decoders: Vec::new(),
            columns: None,
            describe: None,
            description: None,
            rowcount: -1,
            tag_count: None,
            arraysize: 1,
            itersize: 100,
            rownumber: None,
            last_sql: None,
            last_given: None,
            tz_name: None,
            named: name.map(|name| Named::new(name, scrollable, withhold)),
            taken_since_release: 0,
            plan_hook: None,
            early: None,
        }
    }

    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed {
            return Err(errors::interface(py, "the cursor is closed"));
        }
        if self.core.is_closed() {
            return Err(errors::operational(py, "the connection is closed"));
        }
        Ok(())
    }

    fn reset_result(&mut self) {
        self.rows.clear();
        self.early = None;
        self.decoders.clear();
        self.columns = None;
        self.describe = None;
        self.description = None;
        self.rowcount = -1;
        self.tag_count = None;
        self.rownumber = None;
    }

    /// `formats`: the result format codes sent with Bind (text columns decode as text).
    fn absorb_rows(&mut self, rows: Vec<Row>, formats: &[i16]) {
        self.learn_columns(&rows, formats);
        if self.rows.is_empty() {
            self.rows = VecDeque::from(rows); // reuses the buffer: no second copy at the peak
        } else {
            self.rows.extend(rows);
        }
    }

    /// The columns and their decoders, from the first rows of a result.
    fn learn_columns(&mut self, rows: &[Row], formats: &[i16]) {
        if self.columns.is_none() {
            if let Some(first) = rows.first() {
                let cols = col_infos(first.columns());
                self.decoders = column_decoders(&cols, formats);
                self.columns = Some(cols);
            }
        }
    }

    /// `run_bound`; when the server could not type an untyped value ("could not determine
    /// data type", raised before anything runs) and the failure left no trace (autocommit,
    /// or a guarded run undone), once more with literals, as stock sends it.
    fn run_or_literals(
        &mut self,
        py: Python<'_>,
        text: &str,
        params: Option<&Bound<'_, PyAny>>,
        mut q: BoundQuery,
        adjust: fn(&mut BoundQuery),
        early_tuples: bool,
        given: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        adjust(&mut q);
        let untyped = q.params.iter().any(|p| p.oid == 0);
        let hook = if untyped { self.plan_hook.as_ref().map(|h| h.as_ref().map(|o| o.clone_ref(py))) } else { None };
        match self.run_bound(py, q, early_tuples, given) {
            Err(e) if untyped && self.core.failure_left_no_trace() && bind::learn_literals_from(py, &e, text) => {
                let mut q = bind::bind(py, text, params, self.core.hstore_oid())?;
                adjust(&mut q);
                self.plan_hook = hook;
                self.run_bound(py, q, early_tuples, given)
            }
            result => result,
        }
    }

    /// `early_tuples`: a large result may be built into tuples as it arrives (execute).
    /// `given`: the statement as execute() was given it, for a plan hook to recognise.
    fn run_bound(&mut self, py: Python<'_>, mut q: BoundQuery, early_tuples: bool, given: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.reset_result();
        let plan_hook = self.plan_hook.take();
        let watch = crate::nplusone::start(); // N+1 detection: None unless a scope is open
        if watch.is_some() {
            // The detector matches parameters to earlier results by their binary wire values.
            q.effects.client_side = classify::ClientSide::Never;
        }
        // Executed again: the server-side cursor declared before is closed first, as psycopg does.
        if self.named.as_ref().is_some_and(|n| n.declared) {
            self.close_declared(py)?;
        }
        if let Some(named) = &mut self.named {
            let declare = named.declare(&q);
            self.core.run(py, &declare)?;
            named.declared_for(&q);
            self.last_sql = Some(declare.sql);
            self.rownumber = Some(0);
            self.tz_name = self.core.timezone();
            named.nplusone = watch.and_then(|t0| crate::nplusone::observe(py, &q, t0, &self.rows, self.columns.as_deref()));
            return Ok(());
        }
        // N+1 detection reads every wire row: no early building under it.
        let builder = early_build::choose(py, plan_hook, given, watch.is_none() && !q.shape.multi_statement, early_tuples)?;
        let (outcome, built) = early_build::run(py, &self.core, &q, builder)?;
        if let Some((columns, decoders, built)) = built {
            self.columns = Some(columns);
            self.decoders = decoders;
            self.early = Some(built);
        }
        let n = outcome.rows.len() + outcome.taken;
        let returns_rows = n > 0 || classify::may_return_rows(&q.shape, &q.sql);
        self.absorb_rows(outcome.rows, &outcome.formats);
        self.tag_count = outcome.rows_affected.map(|a| a as i64);
        self.rowcount = match outcome.rows_affected {
            Some(a) if n == 0 => a as i64,
            _ if n > 0 => n as i64,
            Some(a) => a as i64,
            None => -1,
        };
        if n == 0 && returns_rows && !q.shape.multi_statement {
            self.describe = Some((q.sql.clone(), q.params.iter().map(|p| p.oid).collect()));
        }
        self.rownumber = if self.columns.is_some() || self.describe.is_some() { Some(0) } else { None };
        self.tz_name = self.core.timezone();
        if let Some(t0) = watch {
            let _ = crate::nplusone::observe(py, &q, t0, &self.rows, self.columns.as_deref());
        }
        self.last_sql = Some(q.sql);
        Ok(())
    }

    fn decode_ctx<'py>(&'py self, py: Python<'py>, replace: &'py TzReplace) -> PyResult<DecodeCtx<'py>> {
        DecodeCtx::new(py, self.tz_name.as_deref(), replace)
    }

    fn has_result(&self, py: Python<'_>) -> PyResult<()> {
        // (A server-side cursor's FETCH asks the server, as psycopg's does.)
        if self.columns.is_none() && self.describe.is_none() && self.named.is_none() {
            return Err(errors::programming(py, "the last operation didn't produce a result"));
        }
        Ok(())
    }

    fn take(&mut self, py: Python<'_>, n: Option<usize>) -> PyResult<VecDeque<Row>> {
        self.check_open(py)?;
        self.has_result(py)?;
        if self.early.is_some() {
            return Err(errors::interface(py, "this result's first rows were built early: fetch them first"));
        }
        match n {
            Some(n) => {
                self.fill(py, n)?;
                let k = n.min(self.rows.len());
                let taken: VecDeque<Row> = self.rows.drain(..k).collect();
                // Small fetchmany() calls over a large buffered result (Django's chunked
                // iteration) free what they consumed as they go, like fetchall().
                self.taken_since_release += k;
                // Only a large buffered result is worth it (a trim walks the heap).
                if self.taken_since_release >= RELEASE_EVERY && self.rows.capacity() >= RELEASE_ABOVE {
                    self.taken_since_release = 0;
                    release_consumed(&mut self.rows);
                }
                Ok(taken)
            }
            None => {
                self.fill_all(py)?;
                Ok(std::mem::take(&mut self.rows))
            }
        }
    }

    /// Up to `n` rows (all when None) as tuples: those built as the result arrived first.
    fn fetch_tuples(&mut self, py: Python<'_>, n: Option<usize>) -> PyResult<Vec<PyObject>> {
        let mut out = early_build::take_built(&mut self.early, py, self.closed, None, n)?;
        if let Some(k) = self.rownumber.as_mut() {
            *k += out.len();
        }
        let wanted = n.map(|n| n - out.len());
        if wanted == Some(0) {
            return Ok(out);
        }
        let rows = self.take(py, wanted)?;
        let rest = self.rows_to_tuples(py, rows)?;
        if out.is_empty() {
            return Ok(rest);
        }
        out.extend(rest);
        Ok(out)
    }

    fn rows_to_tuples(&mut self, py: Python<'_>, mut rows: VecDeque<Row>) -> PyResult<Vec<PyObject>> {
        let replace = self.core.tz_replace.lock().clone();
        let ctx = self.decode_ctx(py, &replace)?;
        let decoders = &self.decoders;
        let out = convert_consuming(&mut rows, |chunk| chunk.iter().map(|r| row_tuple(&ctx, decoders, r)).collect())?;
        drop(ctx);
        if let Some(k) = self.rownumber.as_mut() {
            *k += out.len();
        }
        Ok(out)
    }

    fn ensure_description(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.description.is_some() {
            return Ok(());
        }
        if self.columns.is_none() && self.named.is_some() {
            return self.describe_named(py);
        }
        if self.columns.is_none() {
            if let Some((sql, oids)) = self.describe.take() {
                let session = self.core.session(py)?;
                let types: Vec<Type> = oids.iter().map(|o| wire_type(*o)).collect();
                let stmt = runtime::block_on(py, async { session.client.prepare_typed(&sql, &types).await })
                    .map_err(|e| errors::from_pg(py, &e, Some(&sql)))?;
                let cols = col_infos(stmt.columns());
                self.decoders = cols.iter().map(|c| Decoder::for_type(&c.type_)).collect();
                self.columns = Some(cols);
            }
        }
        if let Some(cols) = &self.columns {
            if !cols.is_empty() {
                self.description = Some(describe(py, cols, self.core.hstore_oid())?);
            }
        }
        Ok(())
    }
}

#[pymethods]
impl Cursor {
    /// `Cursor(connection)`, as psycopg's cursor classes are built (cursor_factory).
    #[new]
    #[pyo3(signature = (connection, name=None, *, scrollable=None, withhold=false))]
    fn py_new(connection: Bound<'_, Connection>, name: Option<String>, scrollable: Option<bool>, withhold: bool) -> Self {
        let core = connection.get().core.clone();
        Cursor::new(connection.unbind(), core, name, scrollable, withhold)
    }

    #[pyo3(signature = (query, params=None, *, prepare=None, binary=None))]
    fn execute<'py>(
        mut slf: PyRefMut<'py, Self>,
        query: &Bound<'py, PyAny>,
        params: Option<&Bound<'py, PyAny>>,
        prepare: Option<bool>,
        binary: Option<bool>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let _ = (prepare, binary);
        let py = slf.py();
        slf.check_open(py)?;
        // A statement refused before it is sent leaves no earlier result behind.
        slf.reset_result();
        let text = bind::query_text(py, query)?;
        let q = bind::bind(py, &text, params, slf.core.hstore_oid())?;
        slf.last_given = Some((query.clone().unbind(), params.map(|p| p.clone().unbind())));
        slf.run_or_literals(py, &text, params, q, unchanged, true, Some(query))?;
        Ok(slf)
    }

    /// `hook(sql)` is called by the next execute with the statement as given, once it is
    /// bound, and returns the plan its rows will be fetched with (`fetch_plan`), or None:
    /// nothing is built early (not its statement). With a plan, a large result's objects are
    /// built while it arrives. `hook=None`: the rows will be fetched with fetch_plan, so none
    /// are built into tuples early.
    fn set_plan_hook(&mut self, hook: Option<PyObject>) {
        self.plan_hook = Some(hook);
    }

    /// Objects built while the result arrived, not yet fetched.
    #[getter]
    fn early_rows(&self) -> usize {
        self.early.as_ref().map_or(0, Built::len)
    }

    #[pyo3(signature = (query, params_seq, *, returning=false))]
    fn executemany(&mut self, py: Python<'_>, query: &Bound<'_, PyAny>, params_seq: &Bound<'_, PyAny>, returning: bool) -> PyResult<()> {
        if self.named.is_some() {
            return Err(errors::not_supported(py, "executemany not supported on server-side cursors"));
        }
        self.check_open(py)?;
        let text = bind::query_text(py, query)?;
        let mut items = params_seq.try_iter()?;
        let first = items.next().transpose()?;
        let second = items.next().transpose()?;
        let several = second.is_some();
        let rows = first.into_iter().chain(second).map(Ok).chain(items);
        // Several rows in autocommit: one transaction, as psycopg's pipelined executemany
        // is one implicit transaction, so a failing row leaves none of the batch behind.
        if !(several && self.core.autocommit_idle()) {
            return self.run_many(py, &text, rows, returning);
        }
        self.core.run(py, &bind::bind(py, "BEGIN", None, None)?)?;
        match self.run_many(py, &text, rows, returning) {
            Ok(()) => self.core.end_transaction(py, true),
            Err(e) => {
                let _ = self.core.end_transaction(py, false);
                Err(e)
            }
        }
    }

    #[pyo3(signature = (procname, args=None))]
    fn callproc<'py>(mut slf: PyRefMut<'py, Self>, procname: &str, args: Option<Bound<'py, PyAny>>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        slf.check_open(py)?;
        let n = match &args {
            Some(a) => a.len()?,
            None => 0,
        };
        let placeholders = vec!["%s"; n].join(",");
        let sql = format!("SELECT * FROM {}({placeholders})", quote_identifier(procname));
        let args_given = args.as_ref().filter(|_| n > 0);
        let q = bind::bind(py, &sql, args_given, slf.core.hstore_oid())?;
        slf.run_or_literals(py, &sql, args_given, q, unchanged, true, None)?;
        Ok(args)
    }

    fn fetchone(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        Ok(self.fetch_tuples(py, Some(1))?.into_iter().next())
    }

    #[pyo3(signature = (size=None))]
    fn fetchmany(&mut self, py: Python<'_>, size: Option<usize>) -> PyResult<Vec<PyObject>> {
        let n = size.unwrap_or(self.arraysize);
        self.fetch_tuples(py, Some(n))
    }

    fn fetchall(&mut self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        self.fetch_tuples(py, None)
    }

    /// All remaining rows as dicts keyed by column name, built directly from the wire.
    fn fetchall_dicts(&mut self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let names: Vec<Bound<'_, PyString>> = self
            .columns
            .as_ref()
            .map(|c| c.iter().map(|c| PyString::intern(py, &c.name)).collect())
            .unwrap_or_default();
        if self.early.is_some() {
            // Tuples built as the result arrived: the same values, keyed by name.
            let tuples = self.fetch_tuples(py, None)?;
            return tuples.iter().map(|t| crate::row::tuple_dict(py, &names, t.bind(py))).collect();
        }
        let mut rows = self.take(py, None)?;
        let replace = self.core.tz_replace.lock().clone();
        let ctx = self.decode_ctx(py, &replace)?;
        let decoders = &self.decoders;
        convert_consuming(&mut rows, |chunk| chunk.iter().map(|row| row_dict(&ctx, decoders, &names, row)).collect())
    }

    /// Up to `size` rows (all when None) built by a materialization plan.
    #[pyo3(signature = (plan, size=None))]
    fn fetch_plan(&mut self, py: Python<'_>, plan: &Bound<'_, MaterializePlan>, size: Option<usize>) -> PyResult<Vec<PyObject>> {
        let mut out = early_build::take_built(&mut self.early, py, self.closed, Some(plan), size)?;
        let wanted = size.map(|n| n - out.len());
        if wanted != Some(0) {
            let mut rows = self.take(py, wanted)?;
            let replace = self.core.tz_replace.lock().clone();
            let ctx = self.decode_ctx(py, &replace)?;
            let decoders = &self.decoders;
            let rest = convert_consuming(&mut rows, |chunk| plan.get().materialize(&ctx, decoders, chunk))?;
            drop(ctx);
            if out.is_empty() {
                out = rest;
            } else {
                out.extend(rest);
            }
        }
        if let Some(n) = self.rownumber.as_mut() {
            *n += out.len();
        }
        Ok(out)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        if self.named.is_some() {
            return self.next_named(py);
        }
        self.fetchone(py)
    }

    /// Moves the position by `value` rows (`mode="absolute"`: to row `value`). psycopg's
    /// rules: a server-side cursor MOVEs on the server; a client-side result raises
    /// IndexError for a position outside it (moving back is not supported here: rows
    /// already fetched are not kept).
    #[pyo3(signature = (value, mode="relative"))]
    fn scroll(&mut self, py: Python<'_>, value: i64, mode: &str) -> PyResult<()> {
        let absolute = match mode {
            "relative" => false,
            "absolute" => true,
            _ => return Err(pyo3::exceptions::PyValueError::new_err(format!("bad mode: {mode}. It should be 'relative' or 'absolute'"))),
        };
        if self.named.is_some() {
            return self.scroll_named(py, value, absolute);
        }
        self.check_open(py)?;
        self.has_result(py)?;
        let at = self.rownumber.unwrap_or(0) as i64;
        let to = if absolute { value } else { at + value };
        let total = at + (self.rows.len() + self.early_rows()) as i64;
        if !(0 <= to && to < total) {
            return Err(pyo3::exceptions::PyIndexError::new_err("position out of bound"));
        }
        if to < at {
            return Err(errors::not_supported(py, "scrolling back over rows already fetched is not supported"));
        }
        self.fetch_tuples(py, Some((to - at) as usize))?;
        Ok(())
    }

    #[getter]
    fn description(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        if self.closed {
            return Ok(py.None());
        }
        self.ensure_description(py)?;
        Ok(self.description.as_ref().map(|d| d.clone_ref(py)).unwrap_or_else(|| py.None()))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed
    }

    #[getter]
    fn name(&self) -> Option<String> {
        self.named.as_ref().map(|n| n.name.clone())
    }

    #[getter]
    fn withhold(&self) -> bool {
        self.named.as_ref().is_some_and(|n| n.withhold)
    }

    #[getter]
    fn scrollable(&self) -> Option<bool> {
        self.named.as_ref().and_then(|n| n.scrollable)
    }

    /// The last statement given to execute(), with client-side literals (display only).
    fn last_executed_query(&self, py: Python<'_>) -> PyResult<Option<String>> {
        match &self.last_given {
            None => Ok(None),
            Some((query, params)) => {
                let text = bind::query_text(py, query.bind(py))?;
                bind::mogrify(py, &text, params.as_ref().map(|p| p.bind(py)), self.core.hstore_oid()).map(Some)
            }
        }
    }

    /// The SQL text last sent to the server, with `$n` placeholders.
    #[getter]
    fn query(&self) -> Option<String> {
        self.last_sql.clone()
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        // As psycopg's close: no result left (rowcount -1, rownumber None).
        self.reset_result();
        self.close_declared(py)
    }

    /// `with cursor.copy("COPY t FROM STDIN") as copy: copy.write_row(...)`.
    #[pyo3(signature = (statement, params=None))]
    fn copy(&self, py: Python<'_>, statement: &Bound<'_, PyAny>, params: Option<&Bound<'_, PyAny>>) -> PyResult<crate::copy::CopyOp> {
        self.check_open(py)?;
        let text = bind::query_text(py, statement)?;
        let sql = bind::mogrify(py, &text, params, self.core.hstore_oid())?;
        Ok(crate::copy::CopyOp::new(self.core.clone(), sql))
    }

    #[pyo3(signature = (query, params=None))]
    fn mogrify(&self, py: Python<'_>, query: &Bound<'_, PyAny>, params: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
        let text = bind::query_text(py, query)?;
        bind::mogrify(py, &text, params, self.core.hstore_oid())
    }

    fn nextset(&self) -> Option<bool> {
        None
    }

    fn setinputsizes(&self, _sizes: &Bound<'_, PyAny>) {}

    #[pyo3(signature = (_size, _column=None))]
    fn setoutputsize(&self, _size: &Bound<'_, PyAny>, _column: Option<&Bound<'_, PyAny>>) {}

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(&mut self, py: Python<'_>, _t: PyObject, _v: PyObject, _tb: PyObject) -> PyResult<()> {
        self.close(py)
    }
}

fn unchanged(_: &mut BoundQuery) {}

fn never_client_side(q: &mut BoundQuery) {
    q.effects.client_side = classify::ClientSide::Never;
}
