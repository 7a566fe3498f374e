//! Column values → Python objects. `Decoder::for_type` is the OID → decoder table; it also
//! decides each column's wire format (binary only where the decoder gives exactly what
//! psycopg's text loaders give under Django, text for the rest). Resolved once per result
//! set, then applied per value with no lookups.
use super::oid;
use super::pyrefs::{self, PyRefs};
use super::str_cache::{str_from_utf8, StrCache};
use crate::codec::{self, datetime as dt, extension::ExtensionType, transcode::TextKind, CodecError};
use crate::errors;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDate, PyDateTime, PyDelta, PyDict, PyString, PyTime, PyTzInfo};
use postgres_types::{Kind, Type};

#[derive(Debug, Clone)]
pub enum Decoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Inet,
    Mac,
    Bits,
    Money,
    TsVector,
    TsQuery,
    PgLsn,
    Xid8,
    Hstore,
    /// ltree, PostGIS, pgvector types in binary, rendered as their text (codec::extension).
    Extension(ExtensionType),
    Array(Box<Decoder>),
    Range(Box<Decoder>),
    Multirange(Box<Decoder>),
    /// Text format, returned as `str`: what psycopg does for a type it has no loader for
    /// (geometric types, xid, tid, reg*, enums, unregistered extension types, arrays of them).
    Str,
    /// Text format, loaded by psycopg's own text loader for this OID (records, arrays of
    /// built-in types psycopg has no element loader for: lists of str).
    Loader(u32),
    /// Text format of a type with a binary decoder: read into the binary form, then decoded
    /// by that decoder (`codec::transcode`), so both formats give the same object.
    FromText(TextKind),
    /// numeric's text, given to Decimal as the binary decoder gives its own rendering.
    NumericText,
    /// jsonb's text: a str, as `Str`; named so a JSONField's column is still parsed natively.
    JsonbText,
    /// float4/float8 text, read as psycopg reads it: `float(text)`. The same value as the
    /// binary decoder's under the default `extra_float_digits` (shortest exact output).
    FloatText,
    /// An array's text (`codec::text_array`), each element read by this text decoder.
    ArrayText(Box<Decoder>),
    /// A binary value of a type we have no decoder for (only when a column's type changed
    /// between the cached Describe and the run): bytes, or str when valid UTF-8.
    Unknown,
}

/// Array types psycopg registers a loader for (`psycopg.postgres.types`): their text
/// comes back as a list; arrays of other types come back as the array's text.
const PSYCOPG_ARRAYS: &[u32] = &[
    143, 199, 271, 629, 651, 719, 775, 791, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012,
    1013, 1014, 1015, 1016, 1017, 1018, 1019, 1020, 1021, 1022, 1027, 1028, 1034, 1040, 1041, 1115, 1182, 1183, 1185,
    1187, 1231, 1270, 1561, 1563, 2201, 2207, 2208, 2209, 2210, 2211, 2287, 2949, 2951, 3221, 3643, 3644, 3645, 3735,
    3770, 3807, 3905, 3907, 3909, 3911, 3913, 3927, 4073, 4090, 4097, 4192, 6150, 6151, 6152, 6153, 6155, 6157,
];

/// psycopg's built-in range and multirange types (others are unregistered: text).
const BUILTIN_RANGES: [u32; 6] = [3904, 3906, 3908, 3910, 3912, 3926];
const BUILTIN_MULTIRANGES: [u32; 6] = [4451, 4532, 4533, 4534, 4535, 4536];
const RECORD: u32 = 2249;

impl Decoder {
    pub fn for_type(ty: &Type) -> Decoder {
        match ty.oid() {
            oid::BOOL => return Decoder::Bool,
            oid::INT2 => return Decoder::Int2,
            oid::INT4 => return Decoder::Int4,
            oid::INT8 => return Decoder::Int8,
            oid::OID => return Decoder::Oid,
            RECORD => return Decoder::Loader(RECORD),
            oid::FLOAT4 => return Decoder::Float4,
            oid::FLOAT8 => return Decoder::Float8,
            oid::NUMERIC => return Decoder::Numeric,
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR | oid::XML | oid::UNKNOWN => return Decoder::Text,
            oid::BYTEA => return Decoder::Bytea,
            oid::DATE => return Decoder::Date,
            oid::TIME => return Decoder::Time,
            oid::TIMETZ => return Decoder::TimeTz,
            oid::TIMESTAMP => return Decoder::Timestamp,
            oid::TIMESTAMPTZ => return Decoder::TimestampTz,
            oid::INTERVAL => return Decoder::Interval,
            oid::UUID => return Decoder::Uuid,
            oid::JSON => return Decoder::Json,
            oid::JSONB => return Decoder::Jsonb,
            oid::INET | oid::CIDR => return Decoder::Inet,
            oid::MACADDR | oid::MACADDR8 => return Decoder::Mac,
            oid::BIT | oid::VARBIT => return Decoder::Bits,
            oid::MONEY => return Decoder::Money,
            oid::TSVECTOR => return Decoder::TsVector,
            // Binary forms that are not text: without these they would fall to Unknown and
            // come back as bytes or, worse, as a str of binary garbage.
            oid::TSQUERY => return Decoder::TsQuery,
            oid::PG_LSN => return Decoder::PgLsn,
            oid::XID8 => return Decoder::Xid8,
            _ => {}
        }
        match ty.kind() {
            Kind::Array(inner) => {
                let elem = Decoder::for_type(inner);
                // Django registers hstore and citext (and so their arrays) on each connection.
                let registered = PSYCOPG_ARRAYS.contains(&ty.oid()) || matches!(inner.name(), "hstore" | "citext");
                match (registered, elem.wants_binary()) {
                    (true, true) => Decoder::Array(Box::new(elem)),
                    (true, false) => Decoder::Loader(ty.oid()),
                    (false, _) => Decoder::Str,
                }
            }
            Kind::Range(inner) if BUILTIN_RANGES.contains(&ty.oid()) => Decoder::Range(Box::new(Decoder::for_type(inner))),
            // (the kind names the range's element type)
            Kind::Multirange(elem) if BUILTIN_MULTIRANGES.contains(&ty.oid()) => {
                Decoder::Multirange(Box::new(Decoder::for_type(elem)))
            }
            Kind::Domain(inner) => Decoder::for_type(inner),
            _ if ty.name() == "hstore" => Decoder::Hstore,
            // citext's binary form is its text (Django registers it as text).
            _ if ty.name() == "citext" => Decoder::Text,
            Kind::Simple => match ExtensionType::for_type_name(ty.name()) {
                Some(ext) if ext.binary_is_faster() => Decoder::Extension(ext),
                _ => Decoder::Str,
            },
            _ => Decoder::Str,
        }
    }

    fn of_text_kind(kind: TextKind) -> Decoder {
        match kind {
            TextKind::Bool => Decoder::Bool,
            TextKind::Int2 => Decoder::Int2,
            TextKind::Int4 => Decoder::Int4,
            TextKind::Int8 => Decoder::Int8,
            TextKind::Oid => Decoder::Oid,
            TextKind::Uuid => Decoder::Uuid,
            TextKind::Date => Decoder::Date,
            TextKind::Timestamp => Decoder::Timestamp,
            TextKind::TimestampTz => Decoder::TimestampTz,
        }
    }

    /// The wire format to ask for: binary when this decoder reads binary.
    pub fn wants_binary(&self) -> bool {
        !matches!(self, Decoder::Str | Decoder::Loader(_))
    }

    /// Whether a column of this type decodes to the same object from text as from binary
    /// (under DateStyle ISO): text-only decoders, and those `for_column` reads text into
    /// the binary decoder for. Results made only of such columns may be asked in text.
    pub fn same_from_text(&self) -> bool {
        !self.wants_binary() || self.text_twin().is_some()
    }

    /// The decoder that reads this decoder's type from text into the same object, for the
    /// types where that is known to hold (under DateStyle ISO).
    fn text_twin(&self) -> Option<Decoder> {
        Some(match self {
            Decoder::Bool => Decoder::FromText(TextKind::Bool),
            Decoder::Int2 => Decoder::FromText(TextKind::Int2),
            Decoder::Int4 => Decoder::FromText(TextKind::Int4),
            Decoder::Int8 => Decoder::FromText(TextKind::Int8),
            Decoder::Oid => Decoder::FromText(TextKind::Oid),
            Decoder::Uuid => Decoder::FromText(TextKind::Uuid),
            Decoder::Date => Decoder::FromText(TextKind::Date),
            Decoder::Timestamp => Decoder::FromText(TextKind::Timestamp),
            Decoder::TimestampTz => Decoder::FromText(TextKind::TimestampTz),
            Decoder::Numeric => Decoder::NumericText,
            Decoder::Float4 | Decoder::Float8 => Decoder::FloatText,
            // Both are str built from the same UTF-8.
            Decoder::Text => Decoder::Str,
            Decoder::Jsonb => Decoder::JsonbText,
            // json's binary form is its text.
            Decoder::Json => Decoder::Json,
            // Scalar elements (array_out separates them with ','); json's stay binary.
            Decoder::Array(elem) => match **elem {
                Decoder::Json | Decoder::Jsonb | Decoder::Array(_) => return None,
                _ => Decoder::ArrayText(Box::new(elem.text_twin()?)),
            },
            _ => return None,
        })
    }

    /// The decoder for a column of type `ty` that arrived in `binary` (or text) format.
    /// They differ from `for_type` only when the column's type changed after the cached
    /// Describe that chose the formats.
    pub fn for_column(ty: &Type, binary: bool) -> Decoder {
        let d = Decoder::for_type(ty);
        match (d.wants_binary(), binary) {
            (true, true) | (false, false) => d,
            (false, true) => {
                let mut base = ty;
                while let Kind::Domain(inner) = base.kind() {
                    base = inner;
                }
                match base.kind() {
                    Kind::Simple => ExtensionType::for_type_name(base.name()).map_or(Decoder::Unknown, Decoder::Extension),
                    _ => Decoder::Unknown,
                }
            }
            (true, false) => match d.text_twin() {
                Some(twin) => twin,
                // Decoders that build a str from binary: the text is that str.
                None => match d {
                Decoder::Inet | Decoder::Mac | Decoder::Bits | Decoder::Money
                | Decoder::TsVector | Decoder::TsQuery | Decoder::PgLsn | Decoder::Xid8 | Decoder::Extension(_) => Decoder::Str,
                _ => Decoder::Loader(ty.oid()),
                },
            },
        }
    }
}

/// How timestamptz values are presented: converted to the session's TimeZone (as the
/// server reports it), then optionally given another tzinfo or made naive (Django).
pub enum TzReplace {
    Keep,
    With(Py<PyAny>),
    Naive,
}

pub struct DecodeCtx<'py> {
    pub py: Python<'py>,
    pub refs: &'py PyRefs,
    session_zone: Bound<'py, PyAny>,
    session_is_utc: bool,
    replace: &'py TzReplace,
    /// psycopg text loaders by OID, made on first use (`Decoder::Loader`).
    loaders: std::cell::RefCell<Vec<(u32, PyObject)>>,
    /// Short text values (columns, array elements, JSON strings) shared within this batch.
    pub strings: std::cell::RefCell<StrCache>,
}

const UTC_NAMES: [&str; 10] =
    ["UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu"];

impl<'py> DecodeCtx<'py> {
    pub fn new(py: Python<'py>, timezone: Option<&str>, replace: &'py TzReplace) -> PyResult<Self> {
        let refs = pyrefs::get(py)?;
        let name = timezone.unwrap_or("UTC");
        let session_is_utc = UTC_NAMES.contains(&name);
        let session_zone = if name == "UTC" {
            // As psycopg's get_tzinfo(): the "UTC" zone is datetime.timezone.utc, not
            // ZoneInfo("UTC") (equal instants, but code compares tzinfo objects).
            refs.utc.bind(py).clone()
        } else {
            match refs.zoneinfo.bind(py).call1((name,)) {
                Ok(z) => z,
                // An offset-style or unknown zone name: psycopg falls back to UTC too.
                Err(_) => refs.utc.bind(py).clone(),
            }
        };
        Ok(DecodeCtx { py, refs, session_zone, session_is_utc, replace, loaders: Default::default(), strings: Default::default() })
    }

    pub fn decode(&self, decoder: &Decoder, raw: &[u8]) -> PyResult<PyObject> {
        let py = self.py;
        Ok(match decoder {
            Decoder::Bool => (fixed::<1>(raw, "bool")?[0] != 0).into_pyobject(py)?.to_owned().into_any().unbind(),
            Decoder::Int2 => i16::from_be_bytes(fixed(raw, "int2")?).into_pyobject(py)?.into_any().unbind(),
            Decoder::Int4 => i32::from_be_bytes(fixed(raw, "int4")?).into_pyobject(py)?.into_any().unbind(),
            Decoder::Int8 => i64::from_be_bytes(fixed(raw, "int8")?).into_pyobject(py)?.into_any().unbind(),
            Decoder::Oid => u32::from_be_bytes(fixed(raw, "oid")?).into_pyobject(py)?.into_any().unbind(),
            Decoder::Float4 => {
                // float4 as its shortest decimal form: 1.1, not 1.100000023841858.
                let f = f32::from_be_bytes(fixed(raw, "float4")?);
                let shortest: f64 = if f.is_finite() {
                    ryu::Buffer::new().format_finite(f).parse().unwrap_or(f as f64)
                } else {
                    f as f64
                };
                shortest.into_pyobject(py)?.into_any().unbind()
            }
            Decoder::Float8 => f64::from_be_bytes(fixed(raw, "float8")?).into_pyobject(py)?.into_any().unbind(),
            Decoder::Numeric => {
                let text = codec::numeric::to_text(raw).map_err(|e| self.err(e))?;
                self.untracked_leaf(self.refs.decimal.bind(py).call1((text,))?)
            }
            Decoder::JsonbText => str_from_utf8(py, raw)?,
            Decoder::Text | Decoder::Str => self.strings.borrow_mut().get(py, raw)?,
            Decoder::Unknown => text_or_bytes(py, raw)?,
            Decoder::Loader(oid) => self.psycopg_load(*oid, raw)?,
            Decoder::FromText(kind) => {
                let binary = codec::transcode::to_binary(*kind, raw).map_err(|e| self.err(e))?;
                return self.decode(&Decoder::of_text_kind(*kind), binary.as_bytes());
            }
            Decoder::NumericText => self.untracked_leaf(self.refs.decimal.bind(py).call1((str_from_utf8(py, raw)?,))?),
            Decoder::FloatText => {
                let text = std::str::from_utf8(raw).ok();
                let value: f64 = text
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| errors::data(py, format!("unexpected float text from the server: {:?}", String::from_utf8_lossy(raw))))?;
                value.into_pyobject(py)?.into_any().unbind()
            }
            Decoder::ArrayText(elem) => self.text_array(elem, raw)?,
            Decoder::Extension(ty) => str_from_utf8(py, &ty.to_text(raw).map_err(|e| self.err(e))?)?,
            Decoder::Jsonb => {
                // Version byte, then the JSON text; Django's JSONField parses it itself.
                match super::json::jsonb_text(raw) {
                    Some(text) => str_from_utf8(py, text)?,
                    None => return Err(errors::data(py, "unsupported jsonb binary format version")),
                }
            }
            Decoder::Json => {
                let parsed = super::json::loads(py, raw, &mut self.strings.borrow_mut());
                match parsed {
                    Some(value) => value,
                    None => {
                        let s = str_from_utf8(py, raw)?;
                        self.refs.json_loads.bind(py).call1((s,))?.unbind()
                    }
                }
            }
            Decoder::Bytea => PyBytes::new(py, raw).into_any().unbind(),
            Decoder::Date => {
                let d = dt::decode_date(raw).map_err(|e| self.err(e))?;
                PyDate::new(py, d.year, d.month, d.day)?.into_any().unbind()
            }
            Decoder::Time => {
                let t = dt::decode_time(raw).map_err(|e| self.err(e))?;
                PyTime::new(py, t.hour, t.minute, t.second, t.micro, None)?.into_any().unbind()
            }
            Decoder::TimeTz => {
                let (t, east) = dt::decode_timetz(raw).map_err(|e| self.err(e))?;
                let offset = PyDelta::new(py, 0, east, 0, true)?;
                let tz = self.refs.timezone.bind(py).call1((offset,))?;
                let tz = tz.downcast::<PyTzInfo>()?;
                PyTime::new(py, t.hour, t.minute, t.second, t.micro, Some(tz))?.into_any().unbind()
            }
            Decoder::Timestamp => {
                let us = dt::timestamp_micros(raw).map_err(|e| self.err(e))?;
                let (d, t) = dt::decode_timestamp_micros(us).map_err(|e| self.err(e))?;
                PyDateTime::new(py, d.year, d.month, d.day, t.hour, t.minute, t.second, t.micro, None)?.into_any().unbind()
            }
            Decoder::TimestampTz => self.timestamptz(raw)?,
            Decoder::Interval => {
                let iv = dt::decode_interval(raw).map_err(|e| self.err(e))?;
                let secs = iv.micros.div_euclid(1_000_000);
                let micros = iv.micros.rem_euclid(1_000_000);
                let days = iv.total_days() + secs.div_euclid(86_400);
                let secs = secs.rem_euclid(86_400);
                let days: i32 = days.try_into().map_err(|_| errors::data(py, "interval out of Python's timedelta range"))?;
                PyDelta::new(py, days, secs as i32, micros as i32, true)
                    .map_err(|_| errors::data(py, "interval out of Python's timedelta range"))?
                    .into_any()
                    .unbind()
            }
            Decoder::Uuid => {
                let bytes: [u8; 16] = fixed(raw, "uuid")?;
                self.uuid(u128::from_be_bytes(bytes))?
            }
            Decoder::Inet => PyString::new(py, &codec::net::inet_to_text(raw).map_err(|e| self.err(e))?).into_any().unbind(),
            Decoder::Mac => PyString::new(py, &codec::net::mac_to_text(raw).map_err(|e| self.err(e))?).into_any().unbind(),
            Decoder::Bits => PyString::new(py, &codec::text::bits_to_text(raw).map_err(|e| self.err(e))?).into_any().unbind(),
            Decoder::Money => PyString::new(py, &codec::text::money_to_text(raw).map_err(|e| self.err(e))?).into_any().unbind(),
            Decoder::TsQuery => {
                PyString::new(py, &codec::text::tsquery_to_text(raw).map_err(|e| self.err(e))?).into_any().unbind()
            }
            Decoder::PgLsn => {
                let lsn = u64::from_be_bytes(fixed(raw, "pg_lsn")?);
                PyString::new(py, &format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)).into_any().unbind()
            }
            Decoder::Xid8 => PyString::new(py, &u64::from_be_bytes(fixed(raw, "xid8")?).to_string()).into_any().unbind(),
            Decoder::TsVector => {
                PyString::new(py, &codec::text::tsvector_to_text(raw).map_err(|e| self.err(e))?).into_any().unbind()
            }
            Decoder::Hstore => self.hstore(raw)?,
            Decoder::Array(elem) => self.array(elem, raw)?,
            Decoder::Range(elem) => self.range(elem, raw)?,
            Decoder::Multirange(elem) => self.multirange(elem, raw)?,
        })
    }

    /// A value that may be NULL.
    #[inline]
    pub fn decode_opt(&self, decoder: &Decoder, raw: Option<&[u8]>) -> PyResult<PyObject> {
        match raw {
            Some(raw) => self.decode(decoder, raw),
            None => Ok(self.py.None()),
        }
    }

    pub(super) fn err(&self, e: CodecError) -> PyErr {
        errors::data(self.py, e.0)
    }

    fn timestamptz(&self, raw: &[u8]) -> PyResult<PyObject> {
        let py = self.py;
        let us = dt::timestamp_micros(raw).map_err(|e| self.err(e))?;
        if self.session_is_utc {
            let (d, t) = dt::decode_timestamp_micros(us).map_err(|e| self.err(e))?;
            let tz = match self.replace {
                TzReplace::Keep => Some(self.session_zone.clone()),
                TzReplace::With(tz) => Some(tz.bind(py).clone()),
                TzReplace::Naive => None,
            };
            let tz = match &tz {
                Some(t) => Some(t.downcast::<PyTzInfo>()?),
                None => None,
            };
            return Ok(PyDateTime::new(py, d.year, d.month, d.day, t.hour, t.minute, t.second, t.micro, tz)?
                .into_any()
                .unbind());
        }
        // The UTC instant may lie outside Python's range while the local time does not
        // (9999-12-31 in a zone west of UTC): convert a shifted instant, then shift back.
        const SHIFT_US: i64 = 2 * dt::USECS_PER_DAY;
        let shift = if us > 0 { -SHIFT_US } else { SHIFT_US };
        let shifted = if dt::decode_timestamp_micros(us).is_ok() { 0 } else { shift };
        let (d, t) = dt::decode_timestamp_micros(us + shifted).map_err(|e| self.err(e))?;
        let utc = self.refs.utc.bind(py).downcast::<PyTzInfo>()?.clone();
        let value = PyDateTime::new(py, d.year, d.month, d.day, t.hour, t.minute, t.second, t.micro, Some(&utc))?;
        let mut local = value
            .call_method1(pyo3::intern!(py, "astimezone"), (&self.session_zone,))
            .map_err(|e| errors::data(py, format!("timestamp out of Python's range in time zone: {e}")))?;
        if shifted != 0 {
            let back = PyDelta::new(py, (-shifted / dt::USECS_PER_DAY) as i32, 0, 0, true)?;
            local = local
                .call_method1(pyo3::intern!(py, "__add__"), (back,))
                .map_err(|_| errors::data(py, "timestamp too large (after year 10K)"))?;
        }
        let kwargs = PyDict::new(py);
        match self.replace {
            TzReplace::Keep => return Ok(local.unbind()),
            TzReplace::With(tz) => kwargs.set_item("tzinfo", tz.bind(py))?,
            TzReplace::Naive => kwargs.set_item("tzinfo", py.None())?,
        }
        Ok(local.call_method("replace", (), Some(&kwargs))?.unbind())
    }

    fn uuid(&self, value: u128) -> PyResult<PyObject> {
        let py = self.py;
        let cls = self.refs.uuid.bind(py);
        // UUID(int=...) re-validates; build it the way uuid.UUID stores itself.
        // `UUID.__new__(UUID)` is object's: its slot is called directly, as that call would.
        // SAFETY: GIL held; `cls` is a type, and its tp_new gets an empty argument tuple.
        let obj = unsafe {
            let tp = cls.as_ptr().cast::<ffi::PyTypeObject>();
            match (*tp).tp_new {
                Some(new) => Bound::from_owned_ptr_or_err(py, new(tp, pyo3::types::PyTuple::empty(py).as_ptr(), std::ptr::null_mut()))?,
                None => cls.call_method1(pyo3::intern!(py, "__new__"), (cls,))?,
            }
        };
        let int = value.into_pyobject(py)?;
        generic_setattr(&obj, pyo3::intern!(py, "int"), int.as_any())?;
        generic_setattr(&obj, pyo3::intern!(py, "is_safe"), self.refs.safe_uuid_unknown.bind(py))?;
        Ok(self.untracked_leaf(obj))
    }

    /// A new Decimal or UUID, no longer tracked by the cyclic collector: nothing of it can
    /// take part in a cycle (`PyRefs::is_leaf`), and a large result's collections then walk
    /// fewer objects.
    fn untracked_leaf(&self, obj: Bound<'py, PyAny>) -> PyObject {
        let p = obj.as_ptr();
        // SAFETY: GIL held; only a leaf object the collector tracks is untracked.
        unsafe {
            if ffi::PyObject_IS_GC(p) != 0 && ffi::PyObject_GC_IsTracked(p) != 0 && self.refs.is_leaf(p) {
                ffi::PyObject_GC_UnTrack(p.cast());
            }
        }
        obj.unbind()
    }

    /// psycopg's text loader for `oid` (TextLoader's str when psycopg has none).
    fn psycopg_load(&self, oid: u32, raw: &[u8]) -> PyResult<PyObject> {
        let py = self.py;
        let found = self.loaders.borrow().iter().find(|(o, _)| *o == oid).map(|(_, l)| l.clone_ref(py));
        let loader = match found {
            Some(l) => l,
            None => {
                let psycopg = py.import("psycopg")?;
                let text = psycopg.getattr("pq")?.getattr("Format")?.getattr("TEXT")?;
                let cls = psycopg.getattr("adapters")?.call_method1("get_loader", (oid, text))?;
                let loader = if cls.is_none() { py.None() } else { cls.call1((oid,))?.unbind() };
                self.loaders.borrow_mut().push((oid, loader.clone_ref(py)));
                loader
            }
        };
        if loader.is_none(py) {
            return str_from_utf8(py, raw);
        }
        Ok(loader.bind(py).call_method1(pyo3::intern!(py, "load"), (PyBytes::new(py, raw),))?.unbind())
    }

}

fn fixed<const N: usize>(raw: &[u8], what: &str) -> PyResult<[u8; N]> {
    codec::read::exact::<N>(raw, what).map_err(|e| Python::with_gil(|py| errors::data(py, e.0)))
}

/// `object.__setattr__(obj, name, value)`: skips any `__setattr__` override.
pub fn generic_setattr(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: all three are valid owned references for the duration of the call.
    let rc = unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(obj.py()))
    }
}

/// A value of a type with no decoder: its text as `str`, or `bytes` when it is not UTF-8.
fn text_or_bytes(py: Python<'_>, raw: &[u8]) -> PyResult<PyObject> {
    if std::str::from_utf8(raw).is_err() {
        return Ok(PyBytes::new(py, raw).into_any().unbind());
    }
    str_from_utf8(py, raw)
}

/// What a column of extension type `type_name` gives for binary value `raw` (tests check
/// it against the extension's own client codecs, e.g. pgvector's).
#[pyfunction]
pub fn extension_text(py: Python<'_>, type_name: &str, raw: &[u8]) -> PyResult<PyObject> {
    let ty = ExtensionType::for_type_name(type_name)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("no native decoder for type {type_name:?}")))?;
    let text = ty.to_text(raw).map_err(|e| errors::data(py, format!("invalid {type_name} value: {e}")))?;
    str_from_utf8(py, &text)
}
