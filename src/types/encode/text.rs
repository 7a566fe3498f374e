//! Text forms of composite values (arrays, ranges, multiranges, hstore): the elements'
//! scalar text plus the type they imply, for binding and for client-side literals.

use super::{bytea_hex, float_text, int_oid, widen, Encoder, Value, NUL_MESSAGE};
use crate::errors;
use crate::sql::literal;
use crate::types::oid;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyTuple};

impl<'py> Encoder<'py> {
    /// Text form used inside arrays and ranges, plus the scalar type it implies.
    pub(super) fn text_form(&self, obj: &Bound<'py, PyAny>, position: usize) -> PyResult<(u32, Option<String>)> {
        let value = self.value_kind(obj, position)?;
        Ok(match value {
            Value::Null => (0, None),
            Value::Bool(b) => (oid::BOOL, Some(if b { "t" } else { "f" }.into())),
            Value::Int(v) => (int_oid(v), Some(v.to_string())),
            Value::BigInt(s) => (oid::NUMERIC, Some(s)),
            Value::IntWrapper(o, v) => (o, Some(v.to_string())),
            Value::Float(f) => (oid::FLOAT8, Some(float_text(f))),
            Value::Float4(f) => (oid::FLOAT4, Some(float_text(f))),
            Value::Str(s) => (0, Some(self.str_value(s, position)?)),
            Value::Bytes(b) => (oid::BYTEA, Some(bytea_hex(&b))),
            Value::Date(d) => (oid::DATE, Some(d.str()?.to_string())),
            Value::DateTime(d) => {
                let aware = self.utcoffset_seconds(d.as_any())?.is_some();
                (if aware { oid::TIMESTAMPTZ } else { oid::TIMESTAMP }, Some(d.str()?.to_string()))
            }
            Value::Time(t) => {
                let aware = self.utcoffset_seconds(t.as_any())?.is_some();
                (if aware { oid::TIMETZ } else { oid::TIME }, Some(t.str()?.to_string()))
            }
            Value::Delta(d) => (oid::INTERVAL, Some(d.str()?.to_string().replace(',', ""))),
            Value::Decimal(s) => (oid::NUMERIC, Some(s)),
            Value::Uuid(u) => (oid::UUID, Some(format!("{u:032x}"))),
            Value::Json(o, s) => (o, Some(s)),
            Value::Inet(o, s) => (o, Some(s)),
            Value::Range(r) => {
                let (o, s) = self.range_text(r, position)?;
                (o, Some(s))
            }
            Value::Multirange(m) => {
                let (o, s) = self.multirange_text(m, position)?;
                (o, Some(s))
            }
            Value::List(l) => {
                let (o, s) = self.array_text(l, position)?;
                (o, Some(s))
            }
            Value::Dict(d) => (self.hstore_oid.unwrap_or(0), Some(self.hstore_text(d, position)?)),
            Value::Tuple(t) => (0, Some(self.record_text(t, position)?)),
        })
    }

    /// A tuple as a composite value's text (`(1,"a b",)`: NULL empty, a field quoted when
    /// empty or holding `",\()` or whitespace), untyped so the server takes it as the
    /// composite its context wants, as psycopg dumps a tuple.
    pub(super) fn record_text(&self, tuple: &Bound<'py, PyTuple>, position: usize) -> PyResult<String> {
        let mut out = String::from("(");
        for (k, item) in tuple.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            match self.text_form(&item, position)?.1 {
                None => {}
                Some(s) if s.is_empty() => out.push_str("\"\""),
                Some(s) if s.contains(|c: char| matches!(c, '"' | ',' | '\\' | '(' | ')' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')) => {
                    out.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            out.push(c);
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
                Some(s) => out.push_str(&s),
            }
        }
        out.push(')');
        Ok(out)
    }

    pub(super) fn array_text(&self, list: &Bound<'py, PyList>, position: usize) -> PyResult<(u32, String)> {
        let mut out = String::with_capacity(list.len() * 8 + 2);
        let mut elem_oid = 0u32;
        let mut widest_int = 0u32;
        let mut first = None;
        self.array_level(list, position, &mut out, &mut elem_oid, &mut widest_int, &mut first, 0)?;
        let elem = if widest_int != 0 { widest_int } else { elem_oid };
        let array_oid = oid::array_of(elem).unwrap_or(0);
        Ok((array_oid, out))
    }

    pub(super) fn array_level(
        &self,
        list: &Bound<'py, PyList>,
        position: usize,
        out: &mut String,
        elem_oid: &mut u32,
        widest_int: &mut u32,
        first: &mut Option<(u32, String)>,
        depth: usize,
    ) -> PyResult<()> {
        if depth > 6 {
            return Err(errors::data(self.py, format!("parameter #{position}: arrays nest at most 6 levels deep")));
        }
        out.push('{');
        for (i, item) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if let Ok(sub) = item.downcast::<PyList>() {
                self.array_level(sub, position, out, elem_oid, widest_int, first, depth + 1)?;
                continue;
            }
            let (o, text) = self.text_form(&item, position)?;
            match &text {
                None => out.push_str("NULL"),
                Some(t) => literal::push_array_element(out, t),
            }
            let int = matches!(o, oid::INT2 | oid::INT4 | oid::INT8 | oid::NUMERIC) && item.is_instance_of::<PyInt>();
            if text.is_some() {
                self.same_element_type(first, if int { u32::MAX } else { o }, &item, position)?;
            }
            if int {
                *widest_int = widen(*widest_int, o);
            } else if *elem_oid == 0 && o != 0 {
                *elem_oid = o;
            } else if (*elem_oid, o) == (oid::TIMESTAMP, oid::TIMESTAMPTZ) || (*elem_oid, o) == (oid::TIME, oid::TIMETZ) {
                // Naive and aware values in one list: timestamp[] (or time[]) would make
                // the server drop the aware ones' offsets; the tz type keeps every value
                // right (naive ones are read in the session time zone, as psycopg does).
                *elem_oid = o;
            }
        }
        out.push('}');
        Ok(())
    }

    /// A list's elements must all dump as one type, as psycopg requires ("cannot dump lists
    /// of mixed types"): the server would otherwise read them all as the first one's type
    /// (a datetime after a date loses its time) or reject the array. Ints of any size are
    /// one type; naive and aware datetimes (or times) go as the aware type.
    fn same_element_type(&self, first: &mut Option<(u32, String)>, class: u32, item: &Bound<'py, PyAny>, position: usize) -> PyResult<()> {
        let Some((seen, seen_name)) = first else {
            *first = Some((class, item.get_type().name()?.to_string()));
            return Ok(());
        };
        let zoned = |a: u32, b: u32| matches!((a, b), (oid::TIMESTAMP, oid::TIMESTAMPTZ) | (oid::TIME, oid::TIMETZ));
        if *seen == class || zoned(*seen, class) || zoned(class, *seen) {
            return Ok(());
        }
        let mut names = [seen_name.clone(), item.get_type().name()?.to_string()];
        names.sort();
        Err(errors::data(
            self.py,
            format!("cannot dump lists of mixed types; got: {}, {} (parameter #{position})", names[0], names[1]),
        ))
    }

    /// `{range,range}`, typed as the multirange of its ranges' type (unknown when they are).
    pub(super) fn multirange_text(&self, multirange: &Bound<'py, PyAny>, position: usize) -> PyResult<(u32, String)> {
        let mut out = String::from("{");
        let mut sub = 0;
        for (i, r) in multirange.try_iter()?.enumerate() {
            let r = r?;
            let (_, s) = self.range_text(&r, position)?;
            if i > 0 {
                out.push(',');
            }
            out.push_str(&s);
            // As psycopg: the element type of the first bound seen (naive → tsmultirange).
            for bound in ["lower", "upper"] {
                if sub == 0 {
                    sub = self.text_form(&r.getattr(bound)?, position)?.0;
                }
            }
        }
        out.push('}');
        let oid = match sub {
            oid::DATE => 4535,
            oid::NUMERIC => 4532,
            oid::TIMESTAMP => 4533,
            oid::TIMESTAMPTZ => 4534,
            _ => 0,
        };
        Ok((oid, out))
    }

    pub(super) fn range_text(&self, range: &Bound<'py, PyAny>, position: usize) -> PyResult<(u32, String)> {
        if !range.getattr("isempty")?.is_truthy()? {
            let lower = range.getattr("lower")?;
            let upper = range.getattr("upper")?;
            let bounds: String = range.getattr("bounds")?.extract()?;
            let (lo_oid, lo) = self.text_form(&lower, position)?;
            let (up_oid, up) = self.text_form(&upper, position)?;
            let sub = if lo_oid != 0 { lo_oid } else { up_oid };
            let range_oid = match sub {
                oid::DATE => oid::DATERANGE,
                oid::NUMERIC => oid::NUMRANGE,
                // Django stores naive datetimes in tstzrange columns (DjangoRangeDumper).
                oid::TIMESTAMP | oid::TIMESTAMPTZ => oid::TSTZRANGE,
                _ => 0,
            };
            let mut out = String::new();
            out.push(bounds.chars().next().unwrap_or('['));
            if let Some(l) = lo {
                literal::push_range_bound(&mut out, &l);
            }
            out.push(',');
            if let Some(u) = up {
                literal::push_range_bound(&mut out, &u);
            }
            out.push(bounds.chars().nth(1).unwrap_or(')'));
            Ok((range_oid, out))
        } else {
            Ok((0, "empty".into()))
        }
    }

    pub(super) fn hstore_text(&self, dict: &Bound<'py, PyDict>, position: usize) -> PyResult<String> {
        let mut out = String::new();
        for (k, v) in dict.iter() {
            let key: String = k.extract().map_err(|_| self.bad(position, &k, "hstore keys must be str"))?;
            let value: Option<String> = if v.is_none() {
                None
            } else {
                Some(v.extract().map_err(|_| self.bad(position, &v, "hstore values must be str or None"))?)
            };
            if key.contains('\0') || value.as_deref().is_some_and(|s| s.contains('\0')) {
                return Err(errors::data(self.py, format!("{NUL_MESSAGE} (parameter #{position})")));
            }
            literal::push_hstore_item(&mut out, &key, value.as_deref());
        }
        Ok(out)
    }
}
