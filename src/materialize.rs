//! Rows straight from the wire into the objects Django's iterables would build: tuples,
//! flat values, dicts, or model instances (with select_related chains and annotations).
//!
//! The Python side (`django_rustpg/materialize.py`) reads Django's compiler once per query
//! and hands over a `MaterializePlan`; per row, this code decodes each column once, applies Django's
//! converters in Django's order, and fills the target objects directly.

use crate::errors;
use crate::row::raw_value;
use crate::types::decode::generic_setattr;
use crate::types::decode::{DecodeCtx, Decoder};
use crate::types::json;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use tokio_postgres::Row;

struct ColumnConverters {
    column: usize,
    /// Called as `converter(value, expression, connection)`, in this order.
    converters: Vec<PyObject>,
    expression: PyObject,
    /// The first converter is Django's `JSONField.from_db_value` with no custom decoder:
    /// the jsonb text is parsed natively into the same objects (`types::json`), and that
    /// converter only runs when the native parser declines.
    native_json: bool,
}

struct ModelPlan {
    cls: PyObject,
    new: PyObject,
    state_cls: PyObject,
    /// Django 6.1's fetch mode, stored on `_state` after `adding` and `db` as `from_db` does.
    fetch_mode: Option<PyObject>,
    db: PyObject,
    /// (attname, column, via_dict) for every loaded field; deferred fields are absent.
    fields: Vec<(Py<PyString>, usize, bool)>,
    /// Foreign key id columns: `Model.__init__` storing a non-None one creates
    /// `_state.fields_cache` (its `is_cached()` check), before `adding` and `db`.
    fields_cache_columns: Vec<usize>,
    /// A related row whose primary key is NULL is no object (nullable join).
    pk_column: Option<usize>,
    annotations: Vec<(Py<PyString>, usize)>,
    related: Vec<RelatedPlan>,
}

struct RelatedPlan {
    model: ModelPlan,
    local_setter: PyObject,
    remote_setter: PyObject,
    /// Django's `set_cached_value` of this key (django_rustpg/materialize_links.py): stored
    /// in the parent's / child's `fields_cache` here, without the Python calls.
    local_cache_name: Option<Py<PyString>>,
    remote_cache_name: Option<Py<PyString>>,
    remote_noop: bool,
}

enum Target {
    Tuples(Option<Vec<usize>>),
    Flat,
    /// Names with their columns, and a dict of those keys (values None) that each row's dict
    /// is copied from: its key table is copied whole, with no growing as keys go in.
    Dicts(Vec<(Py<PyString>, usize)>, Py<PyDict>),
    Models(ModelPlan),
}

#[pyclass(module = "django_rustpg._native", frozen)]
pub struct MaterializePlan {
    /// Columns decoded per row (the select list; extra ordering columns are skipped).
    width: usize,
    converters: Vec<ColumnConverters>,
    /// Per column: decoded by its `native_json` converter entry instead.
    json_columns: Vec<bool>,
    connection: PyObject,
    target: Target,
}

fn parse_converters(py: Python<'_>, spec: &Bound<'_, PyList>) -> PyResult<Vec<ColumnConverters>> {
    spec.iter()
        .map(|item| {
            let _ = py;
            let (column, converters, expression, native_json): (usize, Vec<PyObject>, PyObject, bool) = item.extract()?;
            let native_json = native_json && !converters.is_empty();
            Ok(ColumnConverters { column, converters, expression, native_json })
        })
        .collect()
}

fn interned(py: Python<'_>, names: Vec<(String, usize)>) -> Vec<(Py<PyString>, usize)> {
    names.into_iter().map(|(n, c)| (PyString::intern(py, &n).unbind(), c)).collect()
}

/// `spec` is a `ModelSpec` record (django_rustpg/materialize.py), read by attribute.
fn parse_model(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<ModelPlan> {
    let get = |k: &str| spec.getattr(k);
    let cls = get("cls")?;
    let related = get("related")?
        .try_iter()?
        .map(|r| {
            let r = r?;
            let model = parse_model(py, &r)?;
            let local_setter = r.getattr("local_setter")?.unbind();
            let remote_setter = r.getattr("remote_setter")?.unbind();
            let local_cache_name = r.getattr("local_cache_name")?.extract()?;
            let remote_cache_name = r.getattr("remote_cache_name")?.extract()?;
            let remote_noop = r.getattr("remote_noop")?.extract()?;
            Ok(RelatedPlan { model, local_setter, remote_setter, local_cache_name, remote_cache_name, remote_noop })
        })
        .collect::<PyResult<Vec<_>>>()?;
    static OBJECT_NEW: pyo3::sync::GILOnceCell<PyObject> = pyo3::sync::GILOnceCell::new();
    let new = OBJECT_NEW.get_or_try_init(py, || Ok::<_, PyErr>(py.import("builtins")?.getattr("object")?.getattr("__new__")?.unbind()))?;
    Ok(ModelPlan {
        new: new.clone_ref(py),
        cls: cls.unbind(),
        state_cls: get("state_cls")?.unbind(),
        fetch_mode: Some(get("fetch_mode")?).filter(|m| !m.is_none()).map(Bound::unbind),
        db: get("db")?.unbind(),
        // The names arrive interned (materialize.py caches them): no copy, no lookup per query.
        fields: get("fields")?.extract::<Vec<(Py<PyString>, usize, bool)>>()?,
        fields_cache_columns: get("fields_cache_columns")?.extract()?,
        pk_column: get("pk_column")?.extract()?,
        annotations: interned(py, get("annotations")?.extract()?),
        related,
    })
}

#[pymethods]
impl MaterializePlan {
    /// kind: "tuples" (order: optional column order), "flat", "dicts" (names), "models" (model).
    #[new]
    #[pyo3(signature = (kind, width, converters, connection, order=None, names=None, model=None))]
    fn new(
        py: Python<'_>,
        kind: &str,
        width: usize,
        converters: &Bound<'_, PyList>,
        connection: PyObject,
        order: Option<Vec<usize>>,
        names: Option<Vec<String>>,
        model: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let target = match kind {
            "tuples" => Target::Tuples(order),
            "flat" => Target::Flat,
            "dicts" => {
                let names = interned(py, names.unwrap_or_default().into_iter().enumerate().map(|(i, n)| (n, i)).collect());
                let template = PyDict::new(py);
                for (name, _) in &names {
                    template.set_item(name.bind(py), py.None())?;
                }
                Target::Dicts(names, template.unbind())
            }
            "models" => Target::Models(parse_model(
                py,
                model.ok_or_else(|| pyo3::exceptions::PyValueError::new_err("models plan needs model"))?,
            )?),
            other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown plan kind {other:?}"))),
        };
        let converters = parse_converters(py, converters)?;
        let mut json_columns = vec![false; width];
        for c in converters.iter().filter(|c| c.native_json) {
            if let Some(slot) = json_columns.get_mut(c.column) {
                *slot = true;
            }
        }
        Ok(MaterializePlan { width, converters, json_columns, connection, target })
    }
}

impl MaterializePlan {
    pub fn materialize(&self, ctx: &DecodeCtx<'_>, decoders: &[Decoder], rows: &[Row]) -> PyResult<Vec<PyObject>> {
        let py = ctx.py;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if decoders.len() < self.width {
            // A plan given another statement's rows: an error, never an index past the row.
            return Err(errors::interface(
                py,
                format!("the result has {} columns, the materialization plan reads {}", decoders.len(), self.width),
            ));
        }
        let width = self.width;
        let mut values: Vec<PyObject> = Vec::with_capacity(width);
        let mut out = Vec::with_capacity(rows.len());
        let mut json_keys = json::KeyCache::default();
        // Columns whose jsonb the native parser builds (decided once, not per row).
        let native_json: Vec<bool> =
            decoders[..width].iter().zip(&self.json_columns).map(|(d, &json)| json && matches!(d, Decoder::Jsonb | Decoder::JsonbText)).collect();
        for row in rows {
            values.clear();
            for (i, dec) in decoders[..width].iter().enumerate() {
                if native_json[i] {
                    values.push(py.None()); // parsed below, with its converters
                } else {
                    values.push(ctx.decode_opt(dec, raw_value(row, i))?);
                }
            }
            for conv in &self.converters {
                if conv.column >= values.len() {
                    continue;
                }
                let mut skip = 0;
                if native_json[conv.column] {
                    // from_db_value returns None for NULL, and json.loads' result otherwise.
                    let raw = raw_value(row, conv.column);
                    let parsed = match raw {
                        None => Some(py.None()),
                        Some(r) => match decoders[conv.column] {
                            Decoder::JsonbText => Some(r),
                            _ => json::jsonb_text(r),
                        }
                        .and_then(|text| json::loads_with(py, text, &mut json_keys, &mut ctx.strings.borrow_mut())),
                    };
                    match parsed {
                        Some(value) => {
                            values[conv.column] = value;
                            skip = 1;
                        }
                        None => values[conv.column] = ctx.decode_opt(&decoders[conv.column], raw)?,
                    }
                }
                let mut v = std::mem::replace(&mut values[conv.column], py.None());
                for f in &conv.converters[skip..] {
                    v = f.call1(py, (v, conv.expression.clone_ref(py), self.connection.clone_ref(py)))?;
                }
                values[conv.column] = v;
            }
            out.push(match &self.target {
                Target::Tuples(None) => untracked_if_atomic(ctx, PyTuple::new(py, values.iter().map(|v| v.clone_ref(py)))?),
                Target::Tuples(Some(order)) => {
                    untracked_if_atomic(ctx, PyTuple::new(py, order.iter().map(|&i| values[i].clone_ref(py)))?)
                }
                Target::Flat => values.first().map(|v| v.clone_ref(py)).unwrap_or_else(|| py.None()),
                Target::Dicts(names, template) => {
                    let d = template.bind(py).copy()?;
                    for (name, col) in names {
                        d.set_item(name.bind(py), values[*col].bind(py))?;
                    }
                    // SAFETY: a new dict filled with exactly these values; the GIL is held.
                    unsafe { crate::row::untrack_dict_holding(&d, names.iter().map(|(_, col)| values[*col].as_ptr()), ctx.refs) };
                    d.into_any().unbind()
                }
                Target::Models(plan) => build_model(py, plan, &values)?.unwrap_or_else(|| py.None()),
            });
        }
        Ok(out)
    }
}

/// A built instance, its `_state`, and that state's `fields_cache` once a native store made it.
struct Built<'py> {
    obj: Bound<'py, PyAny>,
    state: Bound<'py, PyAny>,
    fields_cache: Option<Bound<'py, PyDict>>,
}

impl<'py> Built<'py> {
    /// `set_cached_value`'s store: `fields_cache` is made on first use as Django's descriptor
    /// makes it (an empty dict stored on the state), then shared by every later store.
    fn cache(&mut self, name: &Py<PyString>, value: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.obj.py();
        let cache = match &self.fields_cache {
            Some(cache) => cache,
            None => {
                let cache = PyDict::new(py);
                generic_setattr(&self.state, pyo3::intern!(py, "fields_cache"), &cache)?;
                self.fields_cache.insert(cache)
            }
        };
        cache.set_item(name.bind(py), value)
    }
}

/// Builds one instance as `Model.from_db` would, without running `__init__`: the caller
/// only uses this plan for models whose `from_db`/`__init__` are Django's and that have no
/// pre_init/post_init receivers.
fn build_model(py: Python<'_>, plan: &ModelPlan, values: &[PyObject]) -> PyResult<Option<PyObject>> {
    Ok(build(py, plan, values)?.map(|built| built.obj.unbind()))
}

fn build<'py>(py: Python<'py>, plan: &ModelPlan, values: &[PyObject]) -> PyResult<Option<Built<'py>>> {
    if let Some(pk) = plan.pk_column {
        if values[pk].is_none(py) {
            return Ok(None);
        }
    }
    let cls = plan.cls.bind(py);
    let obj = plan.new.bind(py).call1((cls,))?;
    let state = plan.state_cls.bind(py).call0()?;
    let fields_cache = match plan.fields_cache_columns.iter().any(|&c| !values[c].is_none(py)) {
        true => {
            let cache = PyDict::new(py);
            generic_setattr(&state, pyo3::intern!(py, "fields_cache"), &cache)?;
            Some(cache)
        }
        false => None,
    };
    // Plain stores keep CPython's inline attribute values (no per-instance dict object,
    // like Model.__init__'s setattr); data-descriptor attnames go to __dict__ as their
    // __set__ would on a fresh instance.
    generic_setattr(&state, pyo3::intern!(py, "adding"), &pyo3::types::PyBool::new(py, false))?;
    generic_setattr(&state, pyo3::intern!(py, "db"), plan.db.bind(py))?;
    if let Some(mode) = &plan.fetch_mode {
        generic_setattr(&state, pyo3::intern!(py, "fetch_mode"), mode.bind(py))?;
    }
    generic_setattr(&obj, pyo3::intern!(py, "_state"), &state)?;
    let mut dict: Option<Bound<'_, PyDict>> = None;
    for (attname, col, via_dict) in &plan.fields {
        let value = values[*col].bind(py);
        if *via_dict {
            if dict.is_none() {
                dict = Some(obj.getattr(pyo3::intern!(py, "__dict__"))?.downcast_into::<PyDict>()?);
            }
            dict.as_ref().unwrap().set_item(attname.bind(py), value)?;
        } else {
            generic_setattr(&obj, attname.bind(py), value)?;
        }
    }
    let mut built = Built { obj, state, fields_cache };
    // RelatedPopulator.populate's order: the child (with its own related), the local
    // setter, then the remote one.
    for rel in &plan.related {
        match build(py, &rel.model, values)? {
            Some(mut child) => {
                match &rel.local_cache_name {
                    Some(name) => built.cache(name, &child.obj)?,
                    None => drop(rel.local_setter.call1(py, (&built.obj, &child.obj))?),
                }
                if !rel.remote_noop {
                    match &rel.remote_cache_name {
                        Some(name) => child.cache(name, &built.obj)?,
                        None => drop(rel.remote_setter.call1(py, (&child.obj, &built.obj))?),
                    }
                }
            }
            None => match &rel.local_cache_name {
                Some(name) => built.cache(name, &py.None().into_bound(py))?,
                None => drop(rel.local_setter.call1(py, (&built.obj, py.None()))?),
            },
        }
    }
    for (attr, col) in &plan.annotations {
        built.obj.setattr(attr.bind(py), values[*col].bind(py))?;
    }
    Ok(Some(built))
}

fn untracked_if_atomic(ctx: &DecodeCtx<'_>, tuple: Bound<'_, PyTuple>) -> PyObject {
    // SAFETY: a new, filled tuple; the GIL is held (the Bound proves it).
    unsafe { crate::row::untrack_if_atomic(tuple.as_ptr(), ctx.refs) };
    tuple.into_any().unbind()
}
