//! Container values → Python: arrays (binary and text), ranges, multiranges, hstore. Each
//! element goes back through `DecodeCtx::decode_opt` with the element's decoder.
use super::decode::{DecodeCtx, Decoder};
use super::str_cache::str_from_utf8;
use crate::codec;
use crate::errors;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

impl DecodeCtx<'_> {
    pub(super) fn hstore(&self, raw: &[u8]) -> PyResult<PyObject> {
        let py = self.py;
        let mut r = codec::read::Reader::new(raw);
        let count = r.i32().map_err(|e| self.err(e))?;
        let dict = PyDict::new(py);
        for _ in 0..count.max(0) {
            let key = r.value().map_err(|e| self.err(e))?.ok_or_else(|| errors::data(py, "hstore key is NULL"))?;
            let value = r.value().map_err(|e| self.err(e))?;
            let value = match value {
                Some(v) => str_from_utf8(py, v)?,
                None => py.None(),
            };
            dict.set_item(str_from_utf8(py, key)?, value)?;
        }
        Ok(dict.into_any().unbind())
    }

    pub(super) fn array(&self, elem: &Decoder, raw: &[u8]) -> PyResult<PyObject> {
        let py = self.py;
        let mut r = codec::read::Reader::new(raw);
        let e = |e| self.err(e);
        let ndim = r.i32().map_err(e)?;
        let _has_null = r.i32().map_err(e)?;
        let _elem_oid = r.u32().map_err(e)?;
        if ndim <= 0 {
            return Ok(PyList::empty(py).into_any().unbind());
        }
        if ndim > 6 {
            return Err(errors::data(py, format!("array has {ndim} dimensions, more than PostgreSQL's 6")));
        }
        let mut dims = Vec::with_capacity(ndim as usize);
        for _ in 0..ndim {
            let len = r.i32().map_err(e)?;
            let _lower = r.i32().map_err(e)?;
            dims.push(len.max(0) as usize);
        }
        self.array_level(elem, &dims, &mut r)
    }

    fn array_level(&self, elem: &Decoder, dims: &[usize], r: &mut codec::read::Reader<'_>) -> PyResult<PyObject> {
        self.nested_list(elem, dims, &mut || r.value().map_err(|e| self.err(e)))
    }

    /// An array read from its text (`codec::text_array`), each element by `elem`.
    pub(super) fn text_array(&self, elem: &Decoder, raw: &[u8]) -> PyResult<PyObject> {
        let array = codec::text_array::parse(raw).map_err(|e| self.err(e))?;
        let mut items = array.items.iter();
        self.nested_list(elem, &array.dims, &mut || {
            items.next().map(|item| item.as_deref()).ok_or_else(|| errors::data(self.py, "array shorter than its dimensions"))
        })
    }

    /// Lists nested by `dims`, each element taken from `next` in row-major order.
    fn nested_list<'a>(
        &self,
        elem: &Decoder,
        dims: &[usize],
        next: &mut dyn FnMut() -> PyResult<Option<&'a [u8]>>,
    ) -> PyResult<PyObject> {
        let list = PyList::empty(self.py);
        for _ in 0..dims.first().copied().unwrap_or(0) {
            let item = if dims.len() == 1 { self.decode_opt(elem, next()?)? } else { self.nested_list(elem, &dims[1..], next)? };
            list.append(item)?;
        }
        Ok(list.into_any().unbind())
    }

    /// Binary multirange: a count, then each range as a length-prefixed binary range.
    pub(super) fn multirange(&self, elem: &Decoder, raw: &[u8]) -> PyResult<PyObject> {
        static MULTIRANGE: pyo3::sync::GILOnceCell<PyObject> = pyo3::sync::GILOnceCell::new();
        let py = self.py;
        let mut r = codec::read::Reader::new(raw);
        let count = r.i32().map_err(|e| self.err(e))?;
        let list = PyList::empty(py);
        for _ in 0..count.max(0) {
            let item = r.value().map_err(|e| self.err(e))?.ok_or_else(|| errors::data(py, "multirange item is NULL"))?;
            list.append(self.range(elem, item)?)?;
        }
        let cls = MULTIRANGE.get_or_try_init(py, || -> PyResult<PyObject> {
            Ok(py.import("psycopg.types.multirange")?.getattr("Multirange")?.unbind())
        })?;
        Ok(cls.bind(py).call1((list,))?.unbind())
    }

    pub(super) fn range(&self, elem: &Decoder, raw: &[u8]) -> PyResult<PyObject> {
        const EMPTY: u8 = 0x01;
        const LB_INC: u8 = 0x02;
        const UB_INC: u8 = 0x04;
        const LB_INF: u8 = 0x08;
        const UB_INF: u8 = 0x10;
        let py = self.py;
        let cls = self.refs.range.bind(py);
        let mut r = codec::read::Reader::new(raw);
        let flags = r.u8().map_err(|e| self.err(e))?;
        if flags & EMPTY != 0 {
            let kwargs = PyDict::new(py);
            kwargs.set_item("empty", true)?;
            return Ok(cls.call((), Some(&kwargs))?.unbind());
        }
        let lower = if flags & LB_INF != 0 { py.None() } else { self.decode_opt(elem, r.value().map_err(|e| self.err(e))?)? };
        let upper = if flags & UB_INF != 0 { py.None() } else { self.decode_opt(elem, r.value().map_err(|e| self.err(e))?)? };
        let bounds = format!(
            "{}{}",
            if flags & LB_INC != 0 { '[' } else { '(' },
            if flags & UB_INC != 0 { ']' } else { ')' }
        );
        Ok(cls.call1((lower, upper, bounds))?.unbind())
    }
}
