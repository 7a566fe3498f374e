//! One N+1 scope's state: statements grouped by (fingerprint, call site), distinct
//! parameters, duplicates, and which earlier result sets held a statement's parameter
//! values; exported for the Python half to turn into findings.

use super::callsite::Site;
use super::values::{cell_hash, param_value_hash, params_hash, value_columns, Slot};
use super::{analysis_dict, ACTIVE, MAX_DISTINCT, MAX_DUPS, MAX_GROUPS, MAX_PARAMS_CHECKED, MAX_ROWS_PER_RESULT, MAX_VALUES, SOURCES_PER_GROUP};
use crate::bind::BoundQuery;
use crate::fxhash::{FxBuild, FxMap};
use crate::row::{raw_value, ColInfo};
use crate::sql::fingerprint::Fingerprint;
use parking_lot::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_postgres::Row;

#[derive(Clone, Copy)]
struct Hit {
    group: u32,
    column: u16,
    hits: u32,
}

pub(super) struct Group {
    fp: Arc<Fingerprint>,
    sql: String,
    frames: Vec<(Py<PyAny>, i32)>,
    markers: u32,
    count: u32,
    total_ns: u64,
    first_seq: u64,
    /// Repetitions: statements, except that those under one call of a Django operation
    /// count once (a batched `bulk_create()` is one call).
    calls: u32,
    /// The operation frame of the latest statement (held, so its address is not reused
    /// while compared).
    operation: Option<Py<PyAny>>,
    distinct: HashSet<u64, FxBuild>,
    saturated: bool,
    sources: Vec<Hit>,
    pub(super) ctx: Option<PyObject>,
    /// Result column names, kept once this group's rows fed the value map.
    columns: Option<Vec<String>>,
}

struct Dup {
    count: u32,
    total_ns: u64,
    groups: [u32; 4],
    n_groups: u8,
}

#[derive(Default)]
pub(super) struct State {
    statements: u64,
    total_ns: u64,
    /// Reads and writes (statements that are grouped).
    grouped: u64,
    pub(super) groups: Vec<Group>,
    index: FxMap<(u64, u64), u32>,
    dups: FxMap<(u64, u64), Dup>,
    /// value hash → up to two (group, column) sources, packed (see `Slot`).
    values: FxMap<u64, u64>,
    ungrouped: u64,
    values_full: bool,
    dups_full: bool,
}

impl State {
    /// Adds hashes of the key columns of `rows` (see `value_columns`) to the value map,
    /// as values group `gi` loaded.
    fn remember_values<'a>(&mut self, gi: u32, rows: impl IntoIterator<Item = &'a Row>, cols: &[ColInfo]) {
        let vcols = value_columns(cols);
        if vcols.is_empty() || self.values_full {
            return;
        }
        let mut registered = false;
        'rows: for row in rows {
            for &(i, kind) in &vcols {
                let Some(raw) = raw_value(row, i) else { continue };
                let Some(h) = cell_hash(kind, raw) else { continue };
                if self.values.len() >= MAX_VALUES && !self.values.contains_key(&h) {
                    self.values_full = true;
                    break 'rows;
                }
                let slots = self.values.entry(h).or_insert(0);
                *slots = Slot::add(*slots, gi, i);
                registered = true;
            }
        }
        let group = &mut self.groups[gi as usize];
        if registered && group.columns.is_none() {
            group.columns = Some(cols.iter().map(|c| c.name.clone()).collect());
        }
    }
}

/// One N+1 scope's recorded statements (see the module docs).
#[pyclass(module = "django_rustpg._native", name = "NPlusOneScope", frozen)]
pub struct Scope {
    pub(super) state: Mutex<State>,
    pub(super) active: AtomicBool,
    /// The frame that opened the scope (held, so its address stays unique): the stack
    /// walk stops there.
    anchor: Mutex<Option<PyObject>>,
}

impl Scope {
    /// Records one read or write; returns its group and whether Django's frames should be
    /// captured (None: not grouped).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_statement<'a>(
        &self,
        fp: Arc<Fingerprint>,
        q: &BoundQuery,
        elapsed: u64,
        site: Site,
        rows: impl IntoIterator<Item = &'a Row>,
        cols: Option<&[ColInfo]>,
    ) -> Option<(u32, bool)> {
        let callsite = site.hash();
        let operation = site.operation;
        let phash = params_hash(&q.params);
        let mut checked = [0u64; MAX_PARAMS_CHECKED];
        let mut n_checked = 0;
        for h in q.params.iter().take(MAX_PARAMS_CHECKED).filter_map(param_value_hash) {
            checked[n_checked] = h;
            n_checked += 1;
        }
        // Never wait: the only other holder is this scope's export (or a statement run
        // by a finalizer during it); skipping one statement beats a deadlock.
        let Some(mut guard) = self.state.try_lock() else { return None };
        let st = &mut *guard;
        st.statements += 1;
        st.total_ns += elapsed;
        st.grouped += 1;
        let seq = st.statements;
        let key = (fp.hash, callsite);
        let existing = st.index.get(&key).copied();
        let gi = match existing {
            Some(g) => g,
            None => {
                if st.groups.len() >= MAX_GROUPS {
                    st.ungrouped += 1;
                    return None;
                }
                let g = st.groups.len() as u32;
                st.groups.push(Group {
                    fp: fp.clone(),
                    sql: q.sql.clone(),
                    frames: site.frames,
                    markers: site.markers,
                    count: 0,
                    total_ns: 0,
                    first_seq: seq,
                    calls: 0,
                    operation: None,
                    distinct: HashSet::default(),
                    saturated: false,
                    sources: Vec::new(),
                    ctx: None,
                    columns: None,
                });
                st.index.insert(key, g);
                g
            }
        };
        // Which earlier result sets held this statement's parameter values.
        let mut seen_sources = [(0u32, 0u16); MAX_PARAMS_CHECKED * 2];
        let mut n_seen = 0;
        for h in &checked[..n_checked] {
            if let Some(&slots) = st.values.get(h) {
                for i in 0..2 {
                    if let Some(s) = Slot::get(slots, i) {
                        if s.0 != gi && !seen_sources[..n_seen].iter().any(|x| x.0 == s.0) {
                            seen_sources[n_seen] = s;
                            n_seen += 1;
                        }
                    }
                }
            }
        }
        let dup_key = (fp.hash, phash);
        if let Some(d) = st.dups.get_mut(&dup_key) {
            d.count += 1;
            d.total_ns += elapsed;
            let n = d.n_groups as usize;
            if n < d.groups.len() && !d.groups[..n].contains(&gi) {
                d.groups[n] = gi;
                d.n_groups += 1;
            }
        } else if st.dups.len() < MAX_DUPS {
            st.dups.insert(dup_key, Dup { count: 1, total_ns: elapsed, groups: [gi, 0, 0, 0], n_groups: 1 });
        } else {
            st.dups_full = true;
        }
        let group = &mut st.groups[gi as usize];
        group.count += 1;
        group.total_ns += elapsed;
        match operation {
            Some(op) => {
                if group.operation.as_ref().is_none_or(|prev| prev.as_ptr() != op.as_ptr()) {
                    group.calls += 1;
                }
                group.operation = Some(op);
            }
            None => {
                group.calls += 1;
                group.operation = None;
            }
        }
        if !group.saturated {
            if group.distinct.len() >= MAX_DISTINCT {
                group.saturated = true;
            } else {
                group.distinct.insert(phash);
            }
        }
        for s in &seen_sources[..n_seen] {
            if let Some(h) = group.sources.iter_mut().find(|h| h.group == s.0) {
                h.hits += 1;
            } else if group.sources.len() < SOURCES_PER_GROUP {
                group.sources.push(Hit { group: s.0, column: s.1, hits: 1 });
            }
        }
        let capture = group.count == 2 && group.ctx.is_none();
        // This statement's result set: hashes of key columns, for later statements.
        if let Some(cols) = cols {
            st.remember_values(gi, rows.into_iter().take(MAX_ROWS_PER_RESULT), cols);
        }
        Some((gi, capture))
    }

    /// Rows a server-side cursor fetched for the statement recorded as group `gi`.
    pub(super) fn record_fetched<'a>(&self, gi: u32, rows: impl IntoIterator<Item = &'a Row>, cols: &[ColInfo]) {
        if let Some(mut st) = self.state.try_lock() {
            if (gi as usize) < st.groups.len() {
                st.remember_values(gi, rows, cols);
            }
        }
    }

    pub(super) fn anchor_ptr(&self) -> *mut ffi::PyObject {
        self.anchor.lock().as_ref().map(|a| a.as_ptr()).unwrap_or(std::ptr::null_mut())
    }

    pub(super) fn record_other(&self, elapsed: u64) {
        if let Some(mut st) = self.state.try_lock() {
            st.statements += 1;
            st.total_ns += elapsed;
        }
    }
}

#[pymethods]
impl Scope {
    #[new]
    fn new() -> Self {
        Scope { state: Mutex::new(State::default()), active: AtomicBool::new(false), anchor: Mutex::new(None) }
    }

    /// The frame that opened the scope (`sys._getframe(1)` in `scope.__enter__`), or None.
    fn set_anchor(&self, frame: Option<PyObject>) {
        *self.anchor.lock() = frame;
    }

    /// Counts this scope as open (the driver starts observing). Idempotent.
    fn activate(&self) {
        if !self.active.swap(true, Ordering::SeqCst) {
            ACTIVE.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Counts this scope as closed (and lets go of the operation frames it held, with
    /// their locals). Idempotent.
    fn deactivate(&self) {
        if self.active.swap(false, Ordering::SeqCst) {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some(mut st) = self.state.try_lock() {
            for g in &mut st.groups {
                g.operation = None;
            }
        }
    }

    #[getter]
    fn statements(&self) -> u64 {
        self.state.lock().statements
    }

    #[getter]
    fn total_ms(&self) -> f64 {
        self.state.lock().total_ns as f64 / 1e6
    }

    /// What the Python side needs to build findings: groups run at least `threshold`
    /// times, the groups their parameter values came from (transitively), and
    /// (fingerprint, parameters) pairs run at least `threshold` times.
    fn export(&self, py: Python<'_>, threshold: u32) -> PyResult<PyObject> {
        let threshold = threshold.max(1);
        let st = self.state.lock();
        let mut wanted: Vec<bool> = vec![false; st.groups.len()];
        let mut stack: Vec<u32> = Vec::new();
        for (i, g) in st.groups.iter().enumerate() {
            if g.count >= threshold {
                wanted[i] = true;
                stack.push(i as u32);
            }
        }
        let dup_list: Vec<(&(u64, u64), &Dup)> = st.dups.iter().filter(|(_, d)| d.count >= threshold).collect();
        for (_, d) in &dup_list {
            for &g in &d.groups[..d.n_groups as usize] {
                if !wanted[g as usize] {
                    wanted[g as usize] = true;
                    stack.push(g);
                }
            }
        }
        while let Some(g) = stack.pop() {
            for h in &st.groups[g as usize].sources {
                if !wanted[h.group as usize] {
                    wanted[h.group as usize] = true;
                    stack.push(h.group);
                }
            }
        }
        let groups = PyList::empty(py);
        for (i, g) in st.groups.iter().enumerate() {
            if !wanted[i] {
                continue;
            }
            let d = analysis_dict(py, &g.fp)?;
            d.set_item("id", i)?;
            d.set_item("fingerprint", g.fp.hex())?;
            d.set_item("normalized", &g.fp.normalized)?;
            d.set_item("sql", &g.sql)?;
            d.set_item("count", g.count)?;
            d.set_item("calls", g.calls)?;
            // The one place the threshold applies: repetitions (calls) that make a finding.
            d.set_item("reached", g.calls >= threshold)?;
            d.set_item("total_ms", g.total_ns as f64 / 1e6)?;
            d.set_item("distinct", g.distinct.len())?;
            d.set_item("distinct_saturated", g.saturated)?;
            d.set_item("first_seq", g.first_seq)?;
            let frames = PyList::empty(py);
            for (c, l) in &g.frames {
                frames.append(PyTuple::new(py, [c.clone_ref(py).into_bound(py), l.into_pyobject(py)?.into_any()])?)?;
            }
            d.set_item("frames", frames)?;
            d.set_item("markers", g.markers)?;
            d.set_item("ctx", g.ctx.as_ref().map(|c| c.clone_ref(py)))?;
            let sources = PyList::empty(py);
            let mut hits = g.sources.clone();
            // Most hits first; ties: the earliest group.
            hits.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.group.cmp(&b.group)));
            for h in hits {
                let column = st.groups[h.group as usize].columns.as_ref().and_then(|c| c.get(h.column as usize).cloned());
                sources.append((h.group, column, h.hits))?;
            }
            d.set_item("sources", sources)?;
            groups.append(d)?;
        }
        let dups = PyList::empty(py);
        for ((fp, _), d) in dup_list {
            let item = PyDict::new(py);
            item.set_item("fingerprint", format!("{fp:016x}"))?;
            item.set_item("count", d.count)?;
            item.set_item("total_ms", d.total_ns as f64 / 1e6)?;
            item.set_item("groups", d.groups[..d.n_groups as usize].to_vec())?;
            dups.append(item)?;
        }
        let out = PyDict::new(py);
        out.set_item("statements", st.statements)?;
        out.set_item("reads", st.grouped)?;
        out.set_item("total_ms", st.total_ns as f64 / 1e6)?;
        out.set_item("groups", groups)?;
        out.set_item("duplicates", dups)?;
        out.set_item("ungrouped", st.ungrouped)?;
        out.set_item("values_full", st.values_full)?;
        out.set_item("dups_full", st.dups_full)?;
        Ok(out.into_any().unbind())
    }

    /// Forgets everything recorded (the scope stays open).
    fn clear(&self) {
        *self.state.lock() = State::default();
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if *self.active.get_mut() {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
