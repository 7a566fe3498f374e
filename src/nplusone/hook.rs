//! The cursor's hook: records each statement run inside an open scope. Never fails: errors
//! and panics are swallowed so the user's query is never affected.

use super::callsite::{context_get, walk, CallOrigin};
use super::{Scope, CALLBACKS, MAX_ROWS_PER_RESULT};
use crate::bind::BoundQuery;
use crate::row::ColInfo;
use crate::sql::fingerprint;
use pyo3::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio_postgres::Row;

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
    let Some(rt) = CALLBACKS.get(py) else { return Ok(None) };
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
