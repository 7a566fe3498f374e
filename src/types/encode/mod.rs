//! The one place Python values become query parameters.
//!
//! Each value becomes (type OID, wire format, bytes), with the type the server gives the
//! literal Django's default cursor (psycopg's ClientCursor) would send: numbers bare (int as
//! integer/bigint/numeric by value, finite floats as numeric), str as "unknown" so the
//! server infers it from context, lists as arrays of their elements' type.
//! Fixed-width scalars go binary; the rest go in their text form, which the same code also
//! uses to render client-side literals for display.

mod text;

use super::oid;

mod array_binary;
pub mod inline;
use super::pyrefs::{self, PyRefs};
use crate::codec::datetime::{days_from_civil, PG_EPOCH_DAYS, USECS_PER_DAY};
use crate::errors;
use crate::sql::literal;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDate, PyDateAccess, PyDateTime, PyDelta, PyDeltaAccess, PyDict, PyFloat, PyInt,
    PyList, PyMemoryView, PyString, PyTime, PyTimeAccess, PyTuple, PyTzInfoAccess,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Binary,
}

/// One encoded parameter; `None` is SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    pub oid: u32,
    pub format: Format,
    pub value: Option<Vec<u8>>,
}

pub struct Encoder<'py> {
    py: Python<'py>,
    refs: &'py PyRefs,
    hstore_oid: Option<u32>,
}

/// What a Python value is, for both binary parameters and text forms.
enum Value<'a, 'py> {
    Null,
    Bool(bool),
    Int(i64),
    BigInt(String),
    Float(f64),
    Float4(f64),
    IntWrapper(u32, i64),
    Str(&'a Bound<'py, PyAny>),
    Bytes(Vec<u8>),
    Date(&'a Bound<'py, PyDate>),
    DateTime(&'a Bound<'py, PyDateTime>),
    Time(&'a Bound<'py, PyTime>),
    Delta(&'a Bound<'py, PyDelta>),
    Decimal(String),
    Uuid(u128),
    Json(u32, String),
    Range(&'a Bound<'py, PyAny>),
    Multirange(&'a Bound<'py, PyAny>),
    /// inet/cidr, any (type OID, text) a value names itself (`__rustpg_param__`), or an
    /// Enum member's name (untyped).
    Inet(u32, String),
    List(&'a Bound<'py, PyList>),
    Dict(&'a Bound<'py, PyDict>),
    /// A composite's fields, untyped (psycopg's tuple dumper).
    Tuple(&'a Bound<'py, PyTuple>),
}

const NUL_MESSAGE: &str = "PostgreSQL text fields cannot contain NUL (0x00) bytes";

impl<'py> Encoder<'py> {
    pub fn new(py: Python<'py>, hstore_oid: Option<u32>) -> PyResult<Self> {
        Ok(Encoder { py, refs: pyrefs::get(py)?, hstore_oid })
    }

    fn value_kind<'a>(&self, obj: &'a Bound<'py, PyAny>, position: usize) -> PyResult<Value<'a, 'py>> {
        let py = self.py;
        let r = self.refs;
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if obj.is_exact_instance_of::<PyString>() {
            return Ok(Value::Str(obj));
        }
        if let Ok(b) = obj.downcast_exact::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if obj.is_exact_instance_of::<PyInt>() {
            return Ok(match obj.extract::<i64>() {
                Ok(v) => Value::Int(v),
                Err(_) => Value::BigInt(obj.str()?.to_string()),
            });
        }
        if obj.is_exact_instance_of::<PyFloat>() {
            return Ok(Value::Float(obj.extract::<f64>()?));
        }
        let ty = obj.get_type();
        if ty.is(r.int2.bind(py)) {
            return Ok(Value::IntWrapper(oid::INT2, obj.extract()?));
        }
        if ty.is(r.int4.bind(py)) {
            return Ok(Value::IntWrapper(oid::INT4, obj.extract()?));
        }
        if ty.is(r.int8.bind(py)) {
            return Ok(Value::IntWrapper(oid::INT8, obj.extract()?));
        }
        if ty.is(r.oid.bind(py)) {
            return Ok(Value::IntWrapper(oid::OID, obj.extract()?));
        }
        if ty.is(r.float4.bind(py)) {
            return Ok(Value::Float4(obj.extract()?));
        }
        if let Ok(v) = obj.downcast::<PyDateTime>() {
            return Ok(Value::DateTime(v));
        }
        if let Ok(v) = obj.downcast::<PyDate>() {
            return Ok(Value::Date(v));
        }
        if let Ok(v) = obj.downcast::<PyTime>() {
            return Ok(Value::Time(v));
        }
        if let Ok(v) = obj.downcast::<PyDelta>() {
            return Ok(Value::Delta(v));
        }
        if ty.is(r.decimal.bind(py)) || obj.is_instance(r.decimal.bind(py))? {
            let text = obj.str()?.to_string();
            // sNaN has no numeric input form: send NaN, as psycopg does (a signed NaN
            // goes as it is and the server rejects it, as with psycopg).
            if text == "sNaN" {
                return Ok(Value::Decimal("NaN".into()));
            }
            return Ok(Value::Decimal(text));
        }
        if ty.is(r.uuid.bind(py)) || obj.is_instance(r.uuid.bind(py))? {
            return Ok(Value::Uuid(obj.getattr(pyo3::intern!(py, "int"))?.extract()?));
        }
        if obj.is_instance(r.jsonb.bind(py))? || obj.is_instance(r.json.bind(py))? {
            let oid = if obj.is_instance(r.jsonb.bind(py))? { oid::JSONB } else { oid::JSON };
            let inner = obj.getattr("obj")?;
            let dumps = match obj.getattr("dumps") {
                Ok(d) if !d.is_none() => d,
                _ => r.json_dumps.bind(py).clone(),
            };
            let text = dumps.call1((inner,))?;
            let text: String = if let Ok(b) = text.downcast::<PyBytes>() {
                String::from_utf8_lossy(b.as_bytes()).into_owned()
            } else {
                text.extract()?
            };
            return Ok(Value::Json(oid, text));
        }
        if obj.is_instance(r.range.bind(py))? {
            return Ok(Value::Range(obj));
        }
        if obj.is_instance(multirange_class(py)?)? {
            return Ok(Value::Multirange(obj));
        }
        if obj.is_instance_of::<PyString>() {
            return Ok(Value::Str(obj));
        }
        if obj.is_instance_of::<PyBool>() {
            return Ok(Value::Bool(obj.is_truthy()?));
        }
        if obj.is_instance_of::<PyInt>() {
            // int subclasses (IntEnum, Django's IntegerChoices) adapt as int.
            return Ok(match obj.extract::<i64>() {
                Ok(v) => Value::Int(v),
                Err(_) => Value::BigInt(obj.call_method0("__index__")?.str()?.to_string()),
            });
        }
        if obj.is_instance_of::<PyFloat>() {
            return Ok(Value::Float(obj.extract::<f64>()?));
        }
        if let Ok(b) = obj.downcast::<PyBytes>() {
            return Ok(Value::Bytes(b.as_bytes().to_vec()));
        }
        if let Ok(b) = obj.downcast::<PyByteArray>() {
            return Ok(Value::Bytes(b.to_vec()));
        }
        if obj.is_instance_of::<PyMemoryView>() {
            return Ok(Value::Bytes(obj.call_method0("tobytes")?.extract()?));
        }
        for (cls, oid) in [
            (&r.ipv4_address, oid::INET),
            (&r.ipv6_address, oid::INET),
            (&r.ipv4_interface, oid::INET),
            (&r.ipv6_interface, oid::INET),
            (&r.ipv4_network, oid::CIDR),
            (&r.ipv6_network, oid::CIDR),
        ] {
            if ty.is(cls.bind(py)) {
                return Ok(Value::Inet(oid, obj.str()?.to_string()));
            }
        }
        if let Ok(l) = obj.downcast::<PyList>() {
            return Ok(Value::List(l));
        }
        if let Ok(t) = obj.downcast::<PyTuple>() {
            return Ok(Value::Tuple(t));
        }
        if let Ok(d) = obj.downcast::<PyDict>() {
            if self.hstore_oid.is_some() {
                return Ok(Value::Dict(d));
            }
        }
        // A value that names its own type and text form (GeoDjango's adapter on
        // django_rustpg.gis): `__rustpg_param__() -> (type OID or 0, text)`.
        if let Ok(hook) = obj.getattr(pyo3::intern!(py, "__rustpg_param__")) {
            let (oid, text): (u32, String) = hook.call0()?.extract()?;
            return Ok(Value::Inet(oid, text));
        }
        // A plain Enum member goes as its name, untyped, as psycopg dumps it (int and str
        // enums were taken above as their values).
        if obj.is_instance(&py.import("enum")?.getattr("Enum")?)? {
            return Ok(Value::Inet(0, obj.getattr(pyo3::intern!(py, "name"))?.extract()?));
        }
        let type_name = ty.qualname().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        Err(errors::programming(
            py,
            format!("cannot adapt type '{type_name}' (parameter #{position}): no PostgreSQL type is known for it"),
        ))
    }

    fn bad(&self, position: usize, obj: &Bound<'py, PyAny>, why: &str) -> PyErr {
        let type_name = obj.get_type().qualname().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        errors::data(self.py, format!("parameter #{position} ({type_name}): {why}"))
    }

    fn str_value(&self, obj: &Bound<'py, PyAny>, position: usize) -> PyResult<String> {
        let s: &str = &obj.downcast::<PyString>()?.to_cow()?;
        if s.contains('\0') {
            return Err(errors::data(self.py, format!("{NUL_MESSAGE} (parameter #{position})")));
        }
        Ok(s.to_string())
    }

    /// Encodes one parameter. `position` is 1-based, for messages.
    pub fn encode(&self, obj: &Bound<'py, PyAny>, position: usize) -> PyResult<Param> {
        let value = self.value_kind(obj, position)?;
        let bin = |oid: u32, bytes: Vec<u8>| Param { oid, format: Format::Binary, value: Some(bytes) };
        let text = |oid: u32, s: String| Param { oid, format: Format::Text, value: Some(s.into_bytes()) };
        Ok(match value {
            Value::Null => Param { oid: 0, format: Format::Text, value: None },
            Value::Bool(b) => bin(oid::BOOL, vec![b as u8]),
            // Numbers are typed as the literal Django's default (client-side binding) cursor
            // sends for them: psycopg writes every int and finite float bare (`5`, `1.5`,
            // whatever its wrapper), and the server types a bare number by its value alone.
            // int2 for 5 would make `%s * %s` of 300 and 300 overflow where stock gives 90000.
            Value::Int(v) | Value::IntWrapper(_, v) => int_param(v),
            Value::BigInt(s) => text(oid::NUMERIC, s),
            Value::Float(f) | Value::Float4(f) if f.is_finite() => text(oid::NUMERIC, float_text(f)),
            Value::Float(f) | Value::Float4(f) => bin(oid::FLOAT8, f.to_be_bytes().to_vec()),
            Value::Str(s) => text(0, self.str_value(s, position)?),
            Value::Bytes(b) => bin(oid::BYTEA, b),
            Value::Date(d) => bin(oid::DATE, (date_days(d) as i32).to_be_bytes().to_vec()),
            Value::DateTime(d) => {
                let (micros, aware) = self.datetime_micros(d)?;
                bin(if aware { oid::TIMESTAMPTZ } else { oid::TIMESTAMP }, micros.to_be_bytes().to_vec())
            }
            Value::Time(t) => {
                let micros = time_micros(t);
                match self.utcoffset_seconds(t.as_any())? {
                    None => bin(oid::TIME, micros.to_be_bytes().to_vec()),
                    Some(east) => {
                        let mut v = micros.to_be_bytes().to_vec();
                        v.extend((-(east as i32)).to_be_bytes());
                        bin(oid::TIMETZ, v)
                    }
                }
            }
            Value::Delta(d) => {
                let micros = d.get_seconds() as i64 * 1_000_000 + d.get_microseconds() as i64;
                let mut v = micros.to_be_bytes().to_vec();
                v.extend(d.get_days().to_be_bytes());
                v.extend(0i32.to_be_bytes());
                bin(oid::INTERVAL, v)
            }
            // Stock writes a Decimal bare too (`str(d)`): `5` is then an integer to the
            // server (`%s / 2` is 2 there), `5.0` and `1E+2` numeric.
            Value::Decimal(s) => match integer_literal(&s) {
                Some(Ok(v)) => int_param(v),
                _ => text(oid::NUMERIC, s),
            },
            Value::Uuid(u) => bin(oid::UUID, u.to_be_bytes().to_vec()),
            Value::Json(o, s) => {
                if s.contains('\0') {
                    return Err(errors::data(self.py, format!("{NUL_MESSAGE} (parameter #{position})")));
                }
                text(o, s)
            }
            Value::Inet(o, s) => text(o, s),
            Value::Range(r) => {
                let (o, s) = self.range_text(r, position)?;
                text(o, s)
            }
            Value::Multirange(m) => {
                let (o, s) = self.multirange_text(m, position)?;
                text(o, s)
            }
            Value::List(l) => match array_binary::encode_list(self, l, position)? {
                Some(param) => param,
                None => {
                    let (o, s) = self.array_text(l, position)?;
                    text(o, s)
                }
            },
            Value::Dict(d) => text(self.hstore_oid.unwrap_or(0), self.hstore_text(d, position)?),
            Value::Tuple(t) => text(0, self.record_text(t, position)?),
        })
    }

    fn utcoffset_seconds(&self, obj: &Bound<'py, PyAny>) -> PyResult<Option<i64>> {
        let tz = if let Ok(d) = obj.downcast::<PyDateTime>() {
            d.get_tzinfo()
        } else if let Ok(t) = obj.downcast::<PyTime>() {
            t.get_tzinfo()
        } else {
            None
        };
        if tz.is_none() {
            return Ok(None);
        }
        let offset = obj.call_method0(pyo3::intern!(self.py, "utcoffset"))?;
        if offset.is_none() {
            return Ok(None);
        }
        let d = offset.downcast::<PyDelta>()?;
        Ok(Some(d.get_days() as i64 * 86_400 + d.get_seconds() as i64))
    }

    /// Microseconds since 2000-01-01 (UTC when aware), and whether it was aware.
    fn datetime_micros(&self, d: &Bound<'py, PyDateTime>) -> PyResult<(i64, bool)> {
        let days = days_from_civil(d.get_year() as i64, d.get_month() as u32, d.get_day() as u32) - PG_EPOCH_DAYS;
        let tod = (d.get_hour() as i64 * 3600 + d.get_minute() as i64 * 60 + d.get_second() as i64) * 1_000_000
            + d.get_microsecond() as i64;
        let local = days * USECS_PER_DAY + tod;
        match self.utcoffset_seconds(d.as_any())? {
            None => Ok((local, false)),
            Some(east) => Ok((local - east * 1_000_000, true)),
        }
    }

    /// A client-side SQL literal, as psycopg's ClientCursor renders it. Display and
    /// `compose_sql` only: execution always binds.
    pub fn literal(&self, obj: &Bound<'py, PyAny>, position: usize) -> PyResult<String> {
        let py = self.py;
        let value = self.value_kind(obj, position)?;
        let typed = |s: &str, o: u32| match oid::sql_name(o) {
            Some(name) => format!("{}::{name}", literal::quote_string(s)),
            None => literal::quote_string(s),
        };
        let signed = |s: String| if s.starts_with('-') { format!(" {s}") } else { s };
        Ok(match value {
            Value::Null => "NULL".into(),
            Value::Bool(b) => if b { "true" } else { "false" }.into(),
            Value::Int(v) => signed(v.to_string()),
            Value::BigInt(s) => signed(s),
            Value::IntWrapper(_, v) => signed(v.to_string()),
            Value::Float(f) | Value::Float4(f) => {
                if f.is_finite() {
                    // float's own repr: Float4/Float8 wrappers (and other float subclasses)
                    // override __repr__ with "Float4(1.1)", which is not SQL.
                    signed(PyFloat::new(py, f).repr()?.to_string())
                } else {
                    typed(&float_text(f), oid::FLOAT8)
                }
            }
            Value::Decimal(s) => {
                if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") {
                    typed(&s, oid::NUMERIC)
                } else {
                    signed(s)
                }
            }
            Value::Str(s) => literal::quote_string(&self.str_value(s, position)?),
            // standard_conforming_strings is on (always, since PostgreSQL 9.1 by default):
            // psycopg writes '\x..'::bytea, without E and without doubling the backslash.
            Value::Bytes(b) => format!("'{}'::bytea", bytea_hex(&b)),
            _ => {
                let (o, text) = self.text_form(obj, position)?;
                match text {
                    None => "NULL".into(),
                    Some(t) => typed(&t, o),
                }
            }
        })
    }
}

fn int_oid(v: i64) -> u32 {
    if i16::try_from(v).is_ok() {
        oid::INT2
    } else if i32::try_from(v).is_ok() {
        oid::INT4
    } else {
        oid::INT8
    }
}

/// `Some` when `s` reads as an integer literal (`-12`, digits only): its value, or `Err`
/// beyond i64 (the server types it numeric, which is what it is sent as anyway).
fn integer_literal(s: &str) -> Option<Result<i64, std::num::ParseIntError>> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<i64>())
}

/// A scalar int as the server types the bare literal: integer, else bigint (beyond i64 it is
/// `Value::BigInt`, numeric). Array elements keep psycopg's smallest type (`int_oid`), as
/// its client-side rendering does too (`'{1,2}'::int2[]`).
fn int_param(v: i64) -> Param {
    let (oid, bytes) = match i32::try_from(v) {
        Ok(small) => (oid::INT4, small.to_be_bytes().to_vec()),
        Err(_) => (oid::INT8, v.to_be_bytes().to_vec()),
    };
    Param { oid, format: Format::Binary, value: Some(bytes) }
}

fn widen(current: u32, next: u32) -> u32 {
    let rank = |o: u32| match o {
        oid::INT2 => 1,
        oid::INT4 => 2,
        oid::INT8 => 3,
        oid::NUMERIC => 4,
        _ => 0,
    };
    if rank(next) > rank(current) {
        next
    } else {
        current
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        // Python's repr: shortest round-trip form.
        let mut s = ryu::Buffer::new().format_finite(f).to_string();
        if let Some(stripped) = s.strip_suffix(".0") {
            if stripped.contains('e') {
                s = stripped.to_string();
            }
        }
        s
    }
}

fn bytea_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("\\x");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

fn date_days(d: &Bound<'_, PyDate>) -> i64 {
    days_from_civil(d.get_year() as i64, d.get_month() as u32, d.get_day() as u32) - PG_EPOCH_DAYS
}

fn time_micros(t: &Bound<'_, PyTime>) -> i64 {
    (t.get_hour() as i64 * 3600 + t.get_minute() as i64 * 60 + t.get_second() as i64) * 1_000_000 + t.get_microsecond() as i64
}

/// Positional parameters from any sequence (list, tuple, ...), not from str/bytes.
pub fn sequence_items<'py>(params: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(t) = params.downcast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    if let Ok(l) = params.downcast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if params.is_instance_of::<PyString>() || params.is_instance_of::<PyBytes>() {
        return Err(errors::programming(params.py(), "query parameters must be a sequence or a mapping, not a string"));
    }
    params.try_iter()?.collect()
}

/// psycopg's `Multirange` class (imported once).
fn multirange_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLS: pyo3::sync::GILOnceCell<PyObject> = pyo3::sync::GILOnceCell::new();
    Ok(CLS.get_or_try_init(py, || Ok::<_, PyErr>(py.import("psycopg.types.multirange")?.getattr("Multirange")?.unbind()))?.bind(py))
}
