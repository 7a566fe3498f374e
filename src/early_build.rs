//! Building a result's objects while it arrives: each batch of rows the session receives
//! (`session::EarlyRows`) is built while the server produces the next batch on its own
//! core, by a materialization plan handed to the cursor before execute, or into DB-API
//! tuples. The statement still returns once the whole result is in; the fetch hands the
//! objects out first (`Built`), then builds the rest as usual.

use crate::errors;
use crate::formats::Formats;
use crate::materialize::MaterializePlan;
use crate::row::{col_infos, column_decoders, row_tuple, ColInfo, RELEASE_ABOVE};
use crate::session::{ConnCore, EarlyRows, Outcome};
use crate::bind::BoundQuery;
use crate::types::decode::{DecodeCtx, Decoder, TzReplace};
use pyo3::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio_postgres::Row;

/// Builds a result's objects with a materialization plan, batch by batch, while the rest of
/// the result arrives. Decodes exactly as `fetch_plan` would (same decoders, time zone,
/// paused collector); a batch it cannot build is left to `fetch_plan`, which raises there.
pub struct EarlyBuild {
    builder: Builder,
    tz_name: Option<String>,
    replace: Arc<TzReplace>,
    columns: Option<Vec<ColInfo>>,
    decoders: Vec<Decoder>,
    built: VecDeque<PyObject>,
}

impl EarlyRows for EarlyBuild {
    fn restart(&mut self) {
        self.columns = None;
        self.decoders.clear();
        self.built.clear();
    }

    fn take(&mut self, rows: &mut Vec<Row>, formats: &Formats) {
        if self.builder.is_tuples() && self.built.len() + rows.len() > TUPLES_AT_MOST {
            return;
        }
        Python::with_gil(|py| {
            if self.columns.is_none() {
                let cols = col_infos(rows[0].columns());
                self.decoders = column_decoders(&cols, formats);
                self.columns = Some(cols);
            }
            let Ok(ctx) = DecodeCtx::new(py, self.tz_name.as_deref(), &self.replace) else { return };
            // As materialize_rows._gc_paused: no cyclic collection while a batch is built.
            // SAFETY: GIL held; the collector's enabled state is restored below.
            let was_enabled = unsafe { pyo3::ffi::PyGC_Disable() } == 1;
            let built = match &self.builder {
                Builder::Plan(plan) => plan.get().materialize(&ctx, &self.decoders, rows),
                Builder::Tuples => rows.iter().map(|row| row_tuple(&ctx, &self.decoders, row)).collect(),
            };
            if was_enabled {
                unsafe { pyo3::ffi::PyGC_Enable() };
            }
            if let Ok(objects) = built {
                self.built.extend(objects);
                rows.clear();
            }
        })
    }
}

/// DB-API tuples are built early for the first this many rows only: a large result read a
/// row at a time keeps the rest as wire rows, built as they are fetched.
const TUPLES_AT_MOST: usize = RELEASE_ABOVE;

/// What the objects are built by.
pub enum Builder {
    /// The materialization plan the rows will be fetched with (`fetch_plan`).
    Plan(Py<MaterializePlan>),
    /// `row_tuple`, as fetchone/fetchmany/fetchall build them.
    Tuples,
}

impl Builder {
    fn is_tuples(&self) -> bool {
        matches!(self, Builder::Tuples)
    }
}

impl EarlyBuild {
    pub fn new(builder: Builder, tz_name: Option<String>, replace: Arc<TzReplace>) -> Self {
        EarlyBuild { builder, tz_name, replace, columns: None, decoders: Vec::new(), built: VecDeque::new() }
    }

    /// After a run that took rows: the result's columns and decoders, and the objects.
    pub fn finish(self) -> (Vec<ColInfo>, Vec<Decoder>, Built) {
        (self.columns.unwrap_or_default(), self.decoders, Built { builder: self.builder, objects: self.built })
    }
}

/// Objects built while the result arrived, not yet fetched.
pub struct Built {
    builder: Builder,
    objects: VecDeque<PyObject>,
}

impl Built {
    /// Up to `size` of the objects (all when None), for a fetch by the same builder: the
    /// plan given to `fetch_plan`, or None for the tuple fetches.
    pub fn take(&mut self, py: Python<'_>, plan: Option<&Bound<'_, MaterializePlan>>, size: Option<usize>) -> PyResult<Vec<PyObject>> {
        let same = match (&self.builder, plan) {
            (Builder::Plan(built_by), Some(plan)) => built_by.is(plan),
            (Builder::Tuples, None) => true,
            _ => false,
        };
        if !same {
            return Err(errors::interface(py, "this result's first rows were built for another kind of fetch"));
        }
        let k = size.unwrap_or(self.objects.len()).min(self.objects.len());
        Ok(self.objects.drain(..k).collect())
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// The builder for a statement's rows: the plan a hook returns for the statement `given`
/// (`Some(Some(hook))`; None: nothing early), none when the rows will be fetched by plan
/// (`Some(None)`), else tuples where allowed.
/// `may_build`: nothing reads the wire rows themselves (N+1 detection, multi-statement).
pub fn choose(
    py: Python<'_>,
    hook: Option<Option<PyObject>>,
    given: Option<&Bound<'_, PyAny>>,
    may_build: bool,
    tuples: bool,
) -> PyResult<Option<Builder>> {
    Ok(match hook {
        _ if !may_build => None,
        Some(Some(hook)) => hook.call1(py, (given,))?.extract::<Option<Py<MaterializePlan>>>(py)?.map(Builder::Plan),
        Some(None) => None,
        None if tuples => Some(Builder::Tuples),
        None => None,
    })
}

/// Runs `q`, building its rows as they arrive when `builder` is given; the columns,
/// decoders and objects when any were built.
#[allow(clippy::type_complexity)]
pub fn run(py: Python<'_>, core: &ConnCore, q: &BoundQuery, builder: Option<Builder>) -> PyResult<(Outcome, Option<(Vec<ColInfo>, Vec<Decoder>, Built)>)> {
    let Some(builder) = builder else { return Ok((core.run(py, q)?, None)) };
    let mut sink = EarlyBuild::new(builder, core.timezone(), core.tz_replace.lock().clone());
    let outcome = core.run_early(py, q, &mut sink)?;
    let built = (outcome.taken > 0).then(|| sink.finish());
    Ok((outcome, built))
}

/// Up to `size` of the built objects (all when None) for a fetch by `plan` (None: the tuple
/// fetches); `early` is emptied once they are all handed out.
pub fn take_built(early: &mut Option<Built>, py: Python<'_>, closed: bool, plan: Option<&Bound<'_, MaterializePlan>>, size: Option<usize>) -> PyResult<Vec<PyObject>> {
    let Some(built) = early else { return Ok(Vec::new()) };
    if closed {
        return Err(errors::interface(py, "the cursor is closed"));
    }
    let out = built.take(py, plan, size)?;
    if built.is_empty() {
        *early = None;
    }
    Ok(out)
}
