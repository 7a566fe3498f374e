//! Call sites: the application frames of the statement being recorded, found by walking the
//! Python stack (code objects classified once per thread, nothing formatted as text).

use super::{Callbacks, Scope, CALLBACKS, FLAG_APP, FLAG_BOUNDARY, FLAG_OPERATION, MAX_APP_FRAMES, MAX_CODES, MAX_DEPTH};
use crate::fxhash::{FxHasher, FxMap};
use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::RefCell;
use std::hash::Hasher;

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
pub struct Site {
    pub frames: Vec<(Py<PyAny>, i32)>,
    /// Marker bits of the Django frames below the innermost application frame.
    pub markers: u32,
    /// The outermost Django operation frame below the innermost application frame (see
    /// `FLAG_OPERATION`).
    pub operation: Option<Py<PyAny>>,
}

impl Site {
    /// Keeps the innermost frame of each function: outer frames of a function already on
    /// the list are recursion (direct or mutual), and collapsing them makes every depth
    /// of a recursive walk one call site.
    pub fn push(&mut self, code: Py<PyAny>, line: i32) {
        if self.frames.len() < MAX_APP_FRAMES && !self.has(code.as_ptr()) {
            self.frames.push((code, line));
        }
    }

    fn has(&self, code: *mut ffi::PyObject) -> bool {
        self.frames.iter().any(|(c, _)| c.as_ptr() == code)
    }

    pub fn hash(&self) -> u64 {
        let mut h = FxHasher::default();
        for (c, l) in &self.frames {
            h.write_usize(c.as_ptr() as usize);
            h.write_u32(*l as u32);
        }
        h.write_u8(0xAA);
        h.finish()
    }
}

fn classify_code(py: Python<'_>, rt: &Callbacks, cache: &RefCell<WalkCache>, code: *mut ffi::PyObject) -> u32 {
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
pub fn walk(py: Python<'_>, rt: &Callbacks, stop_at_boundary: bool, anchor: *mut ffi::PyObject) -> Site {
    CACHE.with(|cache| walk_with(py, rt, cache, stop_at_boundary, anchor))
}

fn walk_with(py: Python<'_>, rt: &Callbacks, cache: &RefCell<WalkCache>, stop_at_boundary: bool, anchor: *mut ffi::PyObject) -> Site {
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
                let flags = classify_code(py, rt, cache, code);
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
    pub frames: Vec<(Py<PyAny>, i32)>,
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
    let Some(rt) = CALLBACKS.get(py) else {
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
pub fn context_get<'py>(py: Python<'py>, var: &PyObject) -> Option<Bound<'py, PyAny>> {
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
