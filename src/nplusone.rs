//! N+1 detection, per-statement half: what the driver records for every statement run
//! inside an open `django_rustpg.nplusone` scope. The Python half
//! (`django_rustpg/nplusone/`) opens scopes, turns what is recorded here into findings,
//! maps tables and columns to Django relations, and reports.
//!
//! Cost model:
//! - no scope open anywhere: [`start`] is one relaxed atomic load and nothing else runs;
//! - a scope open: one context-variable read per statement, a fingerprint looked up by
//!   SQL string (parsed once per distinct string, [`crate::sql::fingerprint::cached`]),
//!   and for reads and writes a walk of the Python stack that keeps `(code object, line)` of
//!   application frames only (classification is cached per code object; nothing is
//!   formatted as text), plus a few hash-map updates. Python is called only on the second
//!   run of a group (to read Django's frames once) and when a scope reports.
//!
//! Per scope, reads and writes are grouped by (fingerprint, application call stack). A group keeps
//! counts, total time, a bounded set of parameter hashes (distinct values), and hit counts
//! of the earlier groups whose result sets held this group's parameter values: the
//! evidence for a *confirmed* N+1. Result sets contribute hashes of key columns
//! (key-named integer columns by value whatever their width, uuid and text columns by
//! bytes), never values, in a bounded map.

use crate::bind::BoundQuery;
use crate::row::{raw_value, ColInfo};
use crate::sql::fingerprint::{self, Fingerprint, FxBuild, FxHasher, FxMap};
use crate::types::encode::{Format, Param};
use crate::types::oid;
use parking_lot::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Row;

// ---------------------------------------------------------------------------- limits

/// Frames walked per statement (deeper stacks are cut; the innermost frames matter).
const MAX_DEPTH: usize = 256;
/// Application frames kept per call site (recursion collapsed first).
const MAX_APP_FRAMES: usize = 24;
/// Groups per scope; statements of further new groups are counted, not grouped.
const MAX_GROUPS: usize = 20_000;
/// Distinct parameter hashes remembered per group.
const MAX_DISTINCT: usize = 4096;
/// (fingerprint, parameters) pairs remembered per scope, for duplicates.
const MAX_DUPS: usize = 100_000;
/// Result-set value hashes remembered per scope, for the confirmed check.
const MAX_VALUES: usize = 200_000;
/// Rows of one result set whose values are remembered.
const MAX_ROWS_PER_RESULT: usize = 5_000;
/// Result columns considered (the value map stores the column in 8 bits).
const MAX_VALUE_COLUMNS: usize = 255;
/// Parameters of one statement looked up in the value map.
const MAX_PARAMS_CHECKED: usize = 8;
/// Sources remembered per group (per value: two, packed in a u64; see `Slot`).
const SOURCES_PER_GROUP: usize = 8;
/// Code objects classified per thread before the cache is emptied.
const MAX_CODES: usize = 100_000;

/// Classification flags (computed in Python, cached per code object).
const FLAG_APP: u32 = 1;
/// asgiref's `SyncToAsync.thread_handler`: frames beyond it belong to the executor, not
/// to the call; with a captured async origin, the walk stops there.
const FLAG_BOUNDARY: u32 = 1 << 30;
/// A Django operation that may run several statements per call (`save()`, `delete()`
/// with its cascade, `bulk_create()` in batches, `QuerySet.update()`...): statements
/// under one call of it count as one repetition of the group.
const FLAG_OPERATION: u32 = 1 << 29;

// ---------------------------------------------------------------------------- activation

/// Number of open scopes in the process. Zero: the driver skips everything.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Called by the cursor before a statement: `None` (free) unless some scope is open.
#[inline]
pub fn start() -> Option<Instant> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        None
    } else {
        Some(Instant::now())
    }
}

struct Runtime {
    /// `ContextVar[NPlusOneScope | None]`: the scope statements of this context go to.
    scope_var: PyObject,
    /// `ContextVar[CallOrigin | None]`: app frames of an async caller (set around
    /// `sync_to_async`, whose worker thread has no application frames of its own).
    origin_var: PyObject,
    /// `classify(code) -> int`: FLAG_APP | marker bits. Called once per code object.
    classify: PyObject,
    /// `capture() -> object`: reads Django's frames (descriptors, querysets, template
    /// nodes) on the second run of a group; stored with the group.
    capture: PyObject,
}

static RUNTIME: GILOnceCell<Runtime> = GILOnceCell::new();

/// Installs the Python callbacks (once per process; later calls are ignored).
#[pyfunction]
pub fn nplusone_install(py: Python<'_>, scope_var: PyObject, origin_var: PyObject, classify: PyObject, capture: PyObject) -> bool {
    RUNTIME.set(py, Runtime { scope_var, origin_var, classify, capture }).is_ok()
}

/// Number of open scopes (for tests of the zero-cost path).
#[pyfunction]
pub fn nplusone_active() -> usize {
    ACTIVE.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------- fingerprint API

/// `(fingerprint hex, normalized text)` of a statement in Django's form (`%s`) or the
/// driver's (`$1`). Never raises for bad SQL.
#[pyfunction]
pub fn fingerprint_sql(sql: &str) -> (String, String) {
    let fp = fingerprint::cached(&fingerprint::from_pyformat(sql));
    (fp.hex(), fp.normalized.clone())
}

/// What the parser saw: kind, tables, filters, count_only, method.
#[pyfunction]
pub fn analyze_sql(py: Python<'_>, sql: &str) -> PyResult<PyObject> {
    let fp = fingerprint::cached(&fingerprint::from_pyformat(sql));
    let d = analysis_dict(py, &fp)?;
    d.set_item("fingerprint", fp.hex())?;
    d.set_item("normalized", &fp.normalized)?;
    Ok(d.into_any().unbind())
}

fn analysis_dict<'py>(py: Python<'py>, fp: &Fingerprint) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kind", fp.kind.as_str())?;
    d.set_item("tables", fp.tables.clone())?;
    let filters = PyList::empty(py);
    for f in &fp.filters {
        filters.append((f.table.clone(), f.column.clone(), f.many))?;
    }
    d.set_item("filters", filters)?;
    d.set_item("count_only", fp.count_only)?;
    d.set_item(
        "method",
        match fp.method {
            fingerprint::Method::Parsed => "parsed",
            fingerprint::Method::Tokens => "tokens",
            fingerprint::Method::Chars => "chars",
        },
    )?;
    Ok(d)
}

// ---------------------------------------------------------------------------- call sites

/// Per-thread caches of the stack walk; the strong references to code objects keep
/// their addresses unique while they are keys.
struct WalkCache {
    /// code object address → classification flags (the owner of the references).
    codes: FxMap<usize, (u32, Py<PyAny>)>,
    /// A direct-mapped front for `codes` (address, flags): most frames hit here.
    fast: Box<[(usize, u32); FAST_SLOTS]>,
    /// (code object address, f_lasti) → line number: a line-table scan saved.
    lines: FxMap<(usize, i64), i32>,
}

const FAST_SLOTS: usize = 2048;

impl Default for WalkCache {
    fn default() -> Self {
        WalkCache { codes: FxMap::default(), fast: Box::new([(0, 0); FAST_SLOTS]), lines: FxMap::default() }
    }
}

#[inline]
fn fast_slot(key: usize) -> usize {
    (key >> 4) & (FAST_SLOTS - 1)
}

thread_local! {
    static CACHE: RefCell<WalkCache> = RefCell::new(WalkCache::default());
}

/// Application frames, innermost first, recursion collapsed.
struct Site {
    frames: Vec<(Py<PyAny>, i32)>,
    /// Marker bits of the Django frames below the innermost application frame.
    markers: u32,
    /// The outermost Django operation frame below the innermost application frame (see
    /// `FLAG_OPERATION`).
    operation: Option<Py<PyAny>>,
}

impl Site {
    /// Keeps the innermost frame of each function: outer frames of a function already on
    /// the list are recursion (direct or mutual), and collapsing them makes every depth
    /// of a recursive walk one call site.
    fn push(&mut self, code: Py<PyAny>, line: i32) {
        if self.frames.len() < MAX_APP_FRAMES && !self.has(code.as_ptr()) {
            self.frames.push((code, line));
        }
    }

    fn has(&self, code: *mut ffi::PyObject) -> bool {
        self.frames.iter().any(|(c, _)| c.as_ptr() == code)
    }

    fn hash(&self) -> u64 {
        let mut h = FxHasher::default();
        for (c, l) in &self.frames {
            h.write_usize(c.as_ptr() as usize);
            h.write_u32(*l as u32);
        }
        h.write_u8(0xAA);
        h.finish()
    }
}

fn classify(py: Python<'_>, rt: &Runtime, cache: &RefCell<WalkCache>, code: *mut ffi::PyObject) -> u32 {
    let key = code as usize;
    {
        let mut c = cache.borrow_mut();
        let slot = c.fast[fast_slot(key)];
        if slot.0 == key {
            return slot.1;
        }
        if let Some(&(flags, _)) = c.codes.get(&key) {
            c.fast[fast_slot(key)] = (key, flags);
            return flags;
        }
    }
    // SAFETY: `code` is a live code object (we hold a reference for the call).
    let obj: Py<PyAny> = unsafe { Py::from_borrowed_ptr(py, code) };
    // No borrow is held while Python runs.
    let flags = match rt.classify.call1(py, (obj.clone_ref(py),)).and_then(|v| v.extract::<u32>(py)) {
        Ok(f) => f,
        Err(_) => 0,
    };
    let mut c = cache.borrow_mut();
    if c.codes.len() >= MAX_CODES {
        c.codes.clear();
        c.lines.clear();
        c.fast.fill((0, 0));
    }
    c.codes.insert(key, (flags, obj));
    c.fast[fast_slot(key)] = (key, flags);
    flags
}

/// The line a frame is at, cached by (code, f_lasti).
///
/// SAFETY: GIL held; `frame` and `code` are live (the caller holds references), and
/// `code` is a key of `cache.codes` (so its address stays unique while cached).
unsafe fn line_of(py: Python<'_>, cache: &RefCell<WalkCache>, frame: *mut ffi::PyFrameObject, code: *mut ffi::PyObject) -> i32 {
    let lasti_obj = ffi::PyObject_GetAttr(frame.cast(), pyo3::intern!(py, "f_lasti").as_ptr());
    if lasti_obj.is_null() {
        let _ = PyErr::take(py);
        return ffi::PyFrame_GetLineNumber(frame);
    }
    let lasti = ffi::PyLong_AsLongLong(lasti_obj);
    ffi::Py_DECREF(lasti_obj);
    if lasti == -1 && !ffi::PyErr_Occurred().is_null() {
        let _ = PyErr::take(py);
        return ffi::PyFrame_GetLineNumber(frame);
    }
    let key = (code as usize, lasti);
    if let Some(&line) = cache.borrow().lines.get(&key) {
        return line;
    }
    let line = ffi::PyFrame_GetLineNumber(frame);
    let mut c = cache.borrow_mut();
    if c.lines.len() >= MAX_CODES {
        c.lines.clear();
    }
    c.lines.insert(key, line);
    line
}

/// Walks the current thread's Python stack, from the innermost frame out to `anchor`
/// (the frame that opened the scope: frames beyond it are the same for every statement
/// of the scope, so they cannot tell call sites apart), or to a `sync_to_async`
/// boundary when `stop_at_boundary`, or to the bottom.
fn walk(py: Python<'_>, rt: &Runtime, stop_at_boundary: bool, anchor: *mut ffi::PyObject) -> Site {
    CACHE.with(|cache| walk_with(py, rt, cache, stop_at_boundary, anchor))
}

fn walk_with(py: Python<'_>, rt: &Runtime, cache: &RefCell<WalkCache>, stop_at_boundary: bool, anchor: *mut ffi::PyObject) -> Site {
    let mut site = Site { frames: Vec::new(), markers: 0, operation: None };
    // SAFETY: GIL held. PyEval_GetFrame returns a borrowed frame (or NULL); we take our
    // own reference; PyFrame_GetBack/GetCode return new references, each released once.
    unsafe {
        let mut frame = ffi::PyEval_GetFrame();
        if frame.is_null() {
            return site;
        }
        ffi::Py_INCREF(frame.cast());
        let mut depth = 0;
        while !frame.is_null() && depth < MAX_DEPTH {
            let code = ffi::PyFrame_GetCode(frame) as *mut ffi::PyObject;
            if !code.is_null() {
                let flags = classify(py, rt, cache, code);
                if stop_at_boundary && flags & FLAG_BOUNDARY != 0 {
                    ffi::Py_DECREF(code);
                    break;
                }
                if flags & FLAG_APP != 0 {
                    // Only frames that are kept get a line number.
                    if !site.has(code) {
                        let line = line_of(py, cache, frame, code);
                        site.push(Py::from_borrowed_ptr(py, code), line);
                        if site.frames.len() >= MAX_APP_FRAMES {
                            ffi::Py_DECREF(code);
                            break;
                        }
                    }
                } else if site.frames.is_empty() {
                    site.markers |= flags & !FLAG_BOUNDARY;
                    if flags & FLAG_OPERATION != 0 {
                        site.operation = Some(Py::from_borrowed_ptr(py, frame.cast()));
                    }
                }
                ffi::Py_DECREF(code);
            }
            if frame.cast() == anchor {
                break;
            }
            let back = ffi::PyFrame_GetBack(frame);
            ffi::Py_DECREF(frame.cast());
            frame = back;
            depth += 1;
        }
        if !frame.is_null() {
            ffi::Py_DECREF(frame.cast());
        }
    }
    site
}

/// The application frames of the caller, for `sync_to_async` (see `origin_var`).
#[pyclass(module = "django_rustpg._native", frozen)]
pub struct CallOrigin {
    frames: Vec<(Py<PyAny>, i32)>,
}

#[pymethods]
impl CallOrigin {
    fn __len__(&self) -> usize {
        self.frames.len()
    }

    /// `[(code, line), ...]`, innermost first.
    fn frames(&self, py: Python<'_>) -> Vec<(PyObject, i32)> {
        self.frames.iter().map(|(c, l)| (c.clone_ref(py), *l)).collect()
    }
}

/// Captures the calling application frames (cheap: no text is formatted).
#[pyfunction]
pub fn capture_origin(py: Python<'_>) -> PyResult<CallOrigin> {
    let Some(rt) = RUNTIME.get(py) else {
        return Ok(CallOrigin { frames: Vec::new() });
    };
    let anchor = context_get(py, &rt.scope_var)
        .and_then(|s| s.downcast_into::<Scope>().ok())
        .map(|s| s.get().anchor_ptr())
        .unwrap_or(std::ptr::null_mut());
    let mut site = walk(py, rt, true, anchor);
    // An origin captured inside another sync_to_async call keeps the outer origin too.
    if let Some(outer) = context_get(py, &rt.origin_var) {
        if let Ok(outer) = outer.downcast::<CallOrigin>() {
            for (c, l) in &outer.get().frames {
                site.push(c.clone_ref(py), *l);
            }
        }
    }
    Ok(CallOrigin { frames: site.frames })
}

/// `var.get()` through the C API; `None` when unset or on error (cleared).
fn context_get<'py>(py: Python<'py>, var: &PyObject) -> Option<Bound<'py, PyAny>> {
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: GIL held; `var` is a ContextVar; on success `value` is a new reference or NULL.
    let rc = unsafe { ffi::PyContextVar_Get(var.as_ptr(), std::ptr::null_mut(), &mut value) };
    if rc < 0 {
        let _ = PyErr::take(py);
        return None;
    }
    if value.is_null() {
        return None;
    }
    let obj = unsafe { Bound::from_owned_ptr(py, value) };
    if obj.is_none() {
        None
    } else {
        Some(obj)
    }
}

// ---------------------------------------------------------------------------- value hashes

const TAG_INT: u64 = 0x1;
const TAG_BYTES: u64 = 0x2;

fn hash_int(v: i64) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(TAG_INT);
    h.write_u64(v as u64);
    h.finish()
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(TAG_BYTES);
    h.write_usize(b.len());
    h.write(b);
    h.finish()
}

/// A decimal integer in canonical form ("42", "-7"; not "042" or "4.0").
fn canonical_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let digits = if b[0] == b'-' { &b[1..] } else { b };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn be_int(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        2 => i16::from_be_bytes([b[0], b[1]]) as i64,
        4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64,
        8 => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        _ => return None,
    })
}

fn text_hash(b: &[u8]) -> Option<u64> {
    if b.len() > 64 {
        return None;
    }
    Some(match canonical_int(b) {
        Some(i) => hash_int(i),
        None => hash_bytes(b),
    })
}

/// The value of a parameter as the confirmed check compares it.
fn param_value_hash(p: &Param) -> Option<u64> {
    let v = p.value.as_deref()?;
    match (p.oid, p.format) {
        (oid::INT2 | oid::INT4 | oid::INT8, Format::Binary) => be_int(v).map(hash_int),
        (oid::UUID, Format::Binary) if v.len() == 16 => Some(hash_bytes(v)),
        (0 | oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NUMERIC | oid::UNKNOWN, Format::Text) => text_hash(v),
        _ => None,
    }
}

/// Exact parameters, for distinct counts and duplicates.
fn params_hash(params: &[Param]) -> u64 {
    let mut h = FxHasher::default();
    h.write_usize(params.len());
    for p in params {
        h.write_u32(p.oid);
        match &p.value {
            None => h.write_u8(0),
            Some(v) => {
                h.write_u8(1);
                h.write_usize(v.len());
                h.write(v);
            }
        }
    }
    h.finish()
}

#[derive(Clone, Copy)]
enum ColKind {
    Int,
    Bytes,
    Text,
}

/// Column names that hold keys: `id`, `pk`, `*_id` (foreign keys, GenericForeignKey
/// object ids), `*_pk`, `*uuid`, slugs, codes, keys, and Django's
/// `_prefetch_related_val_*` aliases. Other columns (ratings, counts, prices) would only
/// add coincidental matches.
fn key_like(name: &str) -> bool {
    let n = name.as_bytes();
    let ends = |suffix: &[u8]| n.len() >= suffix.len() && n[n.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
    name.eq_ignore_ascii_case("id")
        || name.eq_ignore_ascii_case("pk")
        || name.eq_ignore_ascii_case("slug")
        || name.eq_ignore_ascii_case("code")
        || name.eq_ignore_ascii_case("key")
        || ends(b"_id")
        || ends(b"_pk")
        || ends(b"uuid")
        || ends(b"_slug")
        || name.starts_with("_prefetch_related_val_")
}

/// Which result columns feed the confirmed check: key-like integer columns (see
/// `key_like`), every uuid column and every text column (values up to 64 bytes: emails,
/// slugs, codes; strings rarely coincide by chance, small integers often do).
fn value_columns(cols: &[ColInfo]) -> Vec<(usize, ColKind)> {
    cols.iter()
        .enumerate()
        .take(MAX_VALUE_COLUMNS)
        .filter_map(|(i, c)| {
            let kind = match c.type_.oid() {
                oid::UUID => ColKind::Bytes,
                oid::INT2 | oid::INT4 | oid::INT8 if key_like(&c.name) => ColKind::Int,
                oid::TEXT | oid::VARCHAR | oid::BPCHAR => ColKind::Text,
                _ => return None,
            };
            Some((i, kind))
        })
        .collect()
}

fn cell_hash(kind: ColKind, raw: &[u8]) -> Option<u64> {
    match kind {
        ColKind::Int => be_int(raw).map(hash_int),
        ColKind::Bytes => (raw.len() == 16).then(|| hash_bytes(raw)),
        ColKind::Text => text_hash(raw),
    }
}

// ---------------------------------------------------------------------------- scope state

#[derive(Clone, Copy)]
struct Hit {
    group: u32,
    column: u16,
    hits: u32,
}

struct Group {
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
    ctx: Option<PyObject>,
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
struct State {
    statements: u64,
    total_ns: u64,
    reads: u64,
    groups: Vec<Group>,
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

/// A value's sources: two 32-bit slots, each `(group + 1) << 8 | column` (0: empty).
struct Slot;

impl Slot {
    #[inline]
    fn pack(group: u32, column: usize) -> u64 {
        ((group as u64 + 1) << 8) | column as u64
    }

    #[inline]
    fn get(slots: u64, i: u32) -> Option<(u32, u16)> {
        let s = (slots >> (32 * i)) & 0xFFFF_FFFF;
        (s != 0).then(|| (((s >> 8) - 1) as u32, (s & 0xFF) as u16))
    }

    /// Adds `(group, column)` as the most recent source (slot 0; the previous one moves
    /// to slot 1, the oldest is forgotten) unless the group is there already. Recent
    /// sources matter most: they are the loops the statement runs in.
    #[inline]
    fn add(slots: u64, group: u32, column: usize) -> u64 {
        for i in 0..2 {
            if let Some((g, _)) = Slot::get(slots, i) {
                if g == group {
                    return slots;
                }
            }
        }
        ((slots & 0xFFFF_FFFF) << 32) | Slot::pack(group, column)
    }
}

/// One N+1 scope's recorded statements (see the module docs).
#[pyclass(module = "django_rustpg._native", name = "NPlusOneScope", frozen)]
pub struct Scope {
    state: Mutex<State>,
    active: AtomicBool,
    /// The frame that opened the scope (held, so its address stays unique): the stack
    /// walk stops there.
    anchor: Mutex<Option<PyObject>>,
}

impl Scope {
    /// Records one read or write; returns its group and whether Django's frames should be
    /// captured (None: not grouped).
    #[allow(clippy::too_many_arguments)]
    fn record_statement<'a>(
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
        st.reads += 1;
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
    fn record_fetched<'a>(&self, gi: u32, rows: impl IntoIterator<Item = &'a Row>, cols: &[ColInfo]) {
        if let Some(mut st) = self.state.try_lock() {
            if (gi as usize) < st.groups.len() {
                st.remember_values(gi, rows, cols);
            }
        }
    }

    fn anchor_ptr(&self) -> *mut ffi::PyObject {
        self.anchor.lock().as_ref().map(|a| a.as_ptr()).unwrap_or(std::ptr::null_mut())
    }

    fn record_other(&self, elapsed: u64) {
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
        out.set_item("reads", st.reads)?;
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

// ---------------------------------------------------------------------------- the hook

/// A statement recorded in a scope whose rows a server-side cursor fetches later: those rows
/// feed the confirmed check too (`iterator()` loops), up to `MAX_ROWS_PER_RESULT`.
pub struct FetchWatch {
    scope: Py<Scope>,
    group: u32,
    rows_seen: usize,
}

impl FetchWatch {
    /// Records rows a FETCH returned. Never fails (see [`observe`]).
    pub fn fetched<'a>(&mut self, rows: impl ExactSizeIterator<Item = &'a Row>, cols: Option<&[ColInfo]>) {
        let Some(cols) = cols else { return };
        let room = MAX_ROWS_PER_RESULT.saturating_sub(self.rows_seen);
        let scope = self.scope.get();
        if room == 0 || !scope.active.load(Ordering::Relaxed) {
            return;
        }
        let n = rows.len().min(room);
        self.rows_seen += n;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scope.record_fetched(self.group, rows.take(n), cols)));
    }
}

/// Records one statement that just ran (see `Cursor::run_bound`). Never fails: any
/// error or panic is swallowed so the user's query is never affected.
pub fn observe<'a>(py: Python<'_>, q: &BoundQuery, t0: Instant, rows: impl IntoIterator<Item = &'a Row>, cols: Option<&[ColInfo]>) -> Option<FetchWatch> {
    let elapsed = t0.elapsed().as_nanos() as u64;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| observe_inner(py, q, elapsed, rows, cols)));
    match result {
        Ok(Ok(watch)) => watch,
        _ => None,
    }
}

fn observe_inner<'a>(
    py: Python<'_>,
    q: &BoundQuery,
    elapsed: u64,
    rows: impl IntoIterator<Item = &'a Row>,
    cols: Option<&[ColInfo]>,
) -> PyResult<Option<FetchWatch>> {
    let Some(rt) = RUNTIME.get(py) else { return Ok(None) };
    let Some(scope_obj) = context_get(py, &rt.scope_var) else { return Ok(None) };
    let Ok(scope_obj) = scope_obj.downcast_into::<Scope>() else { return Ok(None) };
    let scope = scope_obj.get();
    let fp = fingerprint::cached(&q.sql);
    if !fp.is_read() && !fp.is_write() {
        scope.record_other(elapsed);
        return Ok(None);
    }
    let origin = context_get(py, &rt.origin_var);
    let mut site = walk(py, rt, origin.is_some(), scope.anchor_ptr());
    if let Some(origin) = origin {
        if let Ok(origin) = origin.downcast::<CallOrigin>() {
            for (c, l) in &origin.get().frames {
                site.push(c.clone_ref(py), *l);
            }
        }
    }
    let (group, capture) = match scope.record_statement(fp, q, elapsed, site, rows, cols) {
        Some(recorded) => recorded,
        None => return Ok(None),
    };
    if capture {
        let ctx = rt.capture.call0(py)?;
        if let Some(mut st) = scope.state.try_lock() {
            if let Some(g) = st.groups.get_mut(group as usize) {
                g.ctx = Some(ctx);
            }
        }
    }
    Ok(Some(FetchWatch { scope: scope_obj.unbind(), group, rows_seen: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_hash_by_value_whatever_their_width() {
        let p = |oid: u32, v: Vec<u8>| Param { oid, format: Format::Binary, value: Some(v) };
        let a = param_value_hash(&p(oid::INT2, 7i16.to_be_bytes().to_vec()));
        let b = param_value_hash(&p(oid::INT4, 7i32.to_be_bytes().to_vec()));
        let c = param_value_hash(&p(oid::INT8, 7i64.to_be_bytes().to_vec()));
        let t = param_value_hash(&Param { oid: 0, format: Format::Text, value: Some(b"7".to_vec()) });
        assert!(a.is_some() && a == b && b == c && c == t);
        assert_eq!(cell_hash(ColKind::Int, &7i64.to_be_bytes()), a);
        assert_eq!(cell_hash(ColKind::Text, b"7"), a);
        assert_ne!(cell_hash(ColKind::Text, b"07"), a);
        let u = [3u8; 16];
        assert_eq!(param_value_hash(&p(oid::UUID, u.to_vec())), cell_hash(ColKind::Bytes, &u));
    }

    #[test]
    fn value_slots() {
        let mut s = 0u64;
        assert_eq!(Slot::get(s, 0), None);
        s = Slot::add(s, 0, 3);
        s = Slot::add(s, 0, 4); // same group: the first column stays
        assert_eq!((Slot::get(s, 0), Slot::get(s, 1)), (Some((0, 3)), None));
        s = Slot::add(s, 7, 200);
        assert_eq!((Slot::get(s, 0), Slot::get(s, 1)), (Some((7, 200)), Some((0, 3))));
        s = Slot::add(s, 9, 1); // the oldest (group 0) is forgotten
        assert_eq!((Slot::get(s, 0), Slot::get(s, 1)), (Some((9, 1)), Some((7, 200))));
        assert_eq!(Slot::add(s, 7, 5), s);
        assert_eq!(Slot::add(0, 16_000_000, 255), Slot::pack(16_000_000, 255));
    }

    #[test]
    fn canonical_ints() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"-12"), Some(-12));
        assert_eq!(canonical_int(b"012"), None);
        assert_eq!(canonical_int(b"1.0"), None);
        assert_eq!(canonical_int(b"-"), None);
    }

    #[test]
    fn key_like_names() {
        assert!(key_like("id") && key_like("ID") && key_like("author_id") && key_like("object_id") && key_like("slug"));
        assert!(key_like("_prefetch_related_val_book_id") && key_like("Book_UUID"));
        assert!(!key_like("title") && !key_like("name") && !key_like("rating") && !key_like("paid"));
    }
}
