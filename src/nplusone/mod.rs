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

//!
//! Layout: `callsite` walks the Python stack, `values` hashes parameters and key columns,
//! `scope` holds what one scope recorded and exports it, `hook` is what the cursor calls.

mod callsite;
mod hook;
mod scope;
mod values;

pub use callsite::{capture_origin, CallOrigin};
pub use hook::{observe, FetchWatch};
pub use scope::Scope;

use crate::sql::fingerprint::{self, Fingerprint};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyList};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

// Limits.

/// Frames walked per statement (deeper stacks are cut; the innermost frames matter).
pub const MAX_DEPTH: usize = 256;
/// Application frames kept per call site (recursion collapsed first).
pub const MAX_APP_FRAMES: usize = 24;
/// Groups per scope; statements of further new groups are counted, not grouped.
pub const MAX_GROUPS: usize = 20_000;
/// Distinct parameter hashes remembered per group.
pub const MAX_DISTINCT: usize = 4096;
/// (fingerprint, parameters) pairs remembered per scope, for duplicates.
pub const MAX_DUPS: usize = 100_000;
/// Result-set value hashes remembered per scope, for the confirmed check.
pub const MAX_VALUES: usize = 200_000;
/// Rows of one result set whose values are remembered.
pub const MAX_ROWS_PER_RESULT: usize = 5_000;
/// Result columns considered (the value map stores the column in 8 bits).
pub const MAX_VALUE_COLUMNS: usize = 255;
/// Parameters of one statement looked up in the value map.
pub const MAX_PARAMS_CHECKED: usize = 8;
/// Sources remembered per group (per value: two, packed in a u64; see `Slot`).
pub const SOURCES_PER_GROUP: usize = 8;
/// Code objects classified per thread before the cache is emptied.
pub const MAX_CODES: usize = 100_000;

// Stack-frame flags: the one definition. Python's `classify(code)` returns them (see
// `_native.NPLUSONE_FLAGS` and `NPLUSONE_MARKERS`, built from these tables).

/// Application code (kept in the call site).
pub const FLAG_APP: u32 = 1;
/// asgiref's `SyncToAsync.thread_handler`: frames beyond it belong to the executor, not
/// to the call; with a captured async origin, the walk stops there.
pub const FLAG_BOUNDARY: u32 = 1 << 30;
/// A Django operation that may run several statements per call (`save()`, `delete()`
/// with its cascade, `bulk_create()` in batches, `QuerySet.update()`...): statements
/// under one call of it count as one repetition of the group.
pub const FLAG_OPERATION: u32 = 1 << 29;

/// Marker bits: which Django function below the application frame loaded the rows
/// (`values` and `iterator` tell how they were read).
pub const MARKERS: [(&str, u32); 19] = [
    ("forward", 1 << 1),
    ("reverse_one", 1 << 2),
    ("deferred", 1 << 3),
    ("gfk", 1 << 4),
    ("get", 1 << 5),
    ("count", 1 << 6),
    ("exists", 1 << 7),
    ("prefetch", 1 << 8),
    ("template", 1 << 9),
    ("refresh", 1 << 10),
    ("save", 1 << 11),
    ("delete", 1 << 12),
    ("queryset_update", 1 << 13),
    ("queryset_delete", 1 << 14),
    ("bulk_create", 1 << 15),
    ("bulk_update", 1 << 16),
    ("related", 1 << 17),
    ("values", 1 << 18),
    ("iterator", 1 << 19),
];

/// Adds `NPLUSONE_FLAGS` (app/operation/boundary) and `NPLUSONE_MARKERS` (name → bit) to `_native`.
pub fn add_flags(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let flags = PyDict::new(py);
    flags.set_item("app", FLAG_APP)?;
    flags.set_item("operation", FLAG_OPERATION)?;
    flags.set_item("boundary", FLAG_BOUNDARY)?;
    m.add("NPLUSONE_FLAGS", flags)?;
    let markers = PyDict::new(py);
    for (name, bit) in MARKERS {
        markers.set_item(name, bit)?;
    }
    m.add("NPLUSONE_MARKERS", markers)
}

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

pub struct Callbacks {
    /// `ContextVar[NPlusOneScope | None]`: the scope statements of this context go to.
    pub scope_var: PyObject,
    /// `ContextVar[CallOrigin | None]`: app frames of an async caller (set around
    /// `sync_to_async`, whose worker thread has no application frames of its own).
    pub origin_var: PyObject,
    /// `classify(code) -> int`: FLAG_* | marker bits. Called once per code object.
    pub classify: PyObject,
    /// `capture() -> object`: reads Django's frames (descriptors, querysets, template
    /// nodes) on the second run of a group; stored with the group.
    pub capture: PyObject,
}

pub static CALLBACKS: GILOnceCell<Callbacks> = GILOnceCell::new();

/// Installs the Python callbacks (once per process; later calls are ignored).
#[pyfunction]
pub fn nplusone_install(py: Python<'_>, scope_var: PyObject, origin_var: PyObject, classify: PyObject, capture: PyObject) -> bool {
    CALLBACKS.set(py, Callbacks { scope_var, origin_var, classify, capture }).is_ok()
}

/// Number of open scopes (for tests of the zero-cost path).
#[pyfunction]
pub fn nplusone_active() -> usize {
    ACTIVE.load(Ordering::Relaxed)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_bits_are_distinct_and_clear_of_the_flags() {
        let mut seen = FLAG_APP | FLAG_OPERATION | FLAG_BOUNDARY;
        for (name, bit) in MARKERS {
            assert_eq!(bit.count_ones(), 1, "{name}");
            assert_eq!(seen & bit, 0, "{name} overlaps");
            seen |= bit;
        }
    }
}
