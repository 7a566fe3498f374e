//! Python classes the codecs need, imported once per interpreter.
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;

pub struct PyRefs {
    pub decimal: Py<PyAny>,
    pub uuid: Py<PyAny>,
    pub safe_uuid_unknown: Py<PyAny>,
    pub json_loads: Py<PyAny>,
    pub json_dumps: Py<PyAny>,
    pub range: Py<PyAny>,
    pub jsonb: Py<PyAny>,
    pub json: Py<PyAny>,
    pub int2: Py<PyAny>,
    pub int4: Py<PyAny>,
    pub int8: Py<PyAny>,
    pub oid: Py<PyAny>,
    pub float4: Py<PyAny>,
    pub float8: Py<PyAny>,
    pub ipv4_address: Py<PyAny>,
    pub ipv6_address: Py<PyAny>,
    pub ipv4_interface: Py<PyAny>,
    pub ipv6_interface: Py<PyAny>,
    pub ipv4_network: Py<PyAny>,
    pub ipv6_network: Py<PyAny>,
    pub zoneinfo: Py<PyAny>,
    pub utc: Py<PyAny>,
    pub timezone: Py<PyAny>,
    pub column: Py<PyAny>,
    pub isolation_level: Py<PyAny>,
    pub transaction_status: Py<PyAny>,
    /// Addresses of the classes `is_leaf` accepts (Decimal, UUID).
    leaf_types: [usize; 2],
}

impl PyRefs {
    /// `obj` is exactly a `Decimal` or a `UUID`: immutable, and referring only to its class
    /// and to ints, strs and `SafeUUID` members, so no reference cycle can pass through it.
    /// The collector need not track one (Python 3.13's `Decimal` is tracked only because
    /// its class is a heap type), nor a tuple holding only such values.
    ///
    /// # Safety
    /// `obj` is a valid object; the GIL is held.
    pub unsafe fn is_leaf(&self, obj: *mut pyo3::ffi::PyObject) -> bool {
        self.leaf_types.contains(&(pyo3::ffi::Py_TYPE(obj) as usize))
    }
}

/// A class whose instances have no `__dict__` (only the slots its code sets), else 0: a
/// substitute class with a `__dict__` could come to hold a container.
fn without_instance_dict(cls: &Py<PyAny>) -> usize {
    // SAFETY: a type object's tp_dictoffset, read with the GIL held (the caller's `py`).
    let is_type = unsafe { pyo3::ffi::PyType_Check(cls.as_ptr()) } != 0;
    if is_type && unsafe { (*cls.as_ptr().cast::<pyo3::ffi::PyTypeObject>()).tp_dictoffset } == 0 {
        cls.as_ptr() as usize
    } else {
        0
    }
}

static REFS: GILOnceCell<PyRefs> = GILOnceCell::new();

/// DB-API description column. `type_display` is psycopg's (3.2+; Django 6.1's introspection
/// reads it): taken from psycopg's own type registry so the text is identical, computed only
/// when read. `describe()` stores `_fmod` (type modifier, when there is one) and `_type_name`
/// (hstore, registered per connection as Django does on stock) in the instance dict.
const COLUMN_PY: &std::ffi::CStr = cr#"
from collections import namedtuple
from psycopg.postgres import types as _types

class Column(namedtuple("Column", "name type_code display_size internal_size precision scale null_ok")):
    @property
    def type_display(self):
        extra = self.__dict__
        name = extra.get("_type_name")
        if name is not None:
            return name
        info = _types.get(self.type_code)
        if info is None:
            return str(self.type_code)
        return info.get_type_display(oid=self.type_code, fmod=extra.get("_fmod", -1))
"#;

pub fn get(py: Python<'_>) -> PyResult<&PyRefs> {
    REFS.get_or_try_init(py, || {
        let attr = |module: &str, name: &str| -> PyResult<Py<PyAny>> { Ok(py.import(module)?.getattr(name)?.unbind()) };
        let column = PyModule::from_code(py, COLUMN_PY, c"django_rustpg/_native/column.py", c"django_rustpg._native_column")?
            .getattr("Column")?;
        column.setattr("__module__", "django_rustpg._native")?;
        let (decimal, uuid) = (attr("decimal", "Decimal")?, attr("uuid", "UUID")?);
        let leaf_types = [without_instance_dict(&decimal), without_instance_dict(&uuid)];
        Ok(PyRefs {
            decimal,
            uuid,
            safe_uuid_unknown: py.import("uuid")?.getattr("SafeUUID")?.getattr("unknown")?.unbind(),
            json_loads: attr("json", "loads")?,
            json_dumps: attr("json", "dumps")?,
            range: attr("psycopg.types.range", "Range")?,
            jsonb: attr("psycopg.types.json", "Jsonb")?,
            json: attr("psycopg.types.json", "Json")?,
            int2: attr("psycopg.types.numeric", "Int2")?,
            int4: attr("psycopg.types.numeric", "Int4")?,
            int8: attr("psycopg.types.numeric", "Int8")?,
            oid: attr("psycopg.types.numeric", "Oid")?,
            float4: attr("psycopg.types.numeric", "Float4")?,
            float8: attr("psycopg.types.numeric", "Float8")?,
            ipv4_address: attr("ipaddress", "IPv4Address")?,
            ipv6_address: attr("ipaddress", "IPv6Address")?,
            ipv4_interface: attr("ipaddress", "IPv4Interface")?,
            ipv6_interface: attr("ipaddress", "IPv6Interface")?,
            ipv4_network: attr("ipaddress", "IPv4Network")?,
            ipv6_network: attr("ipaddress", "IPv6Network")?,
            zoneinfo: attr("zoneinfo", "ZoneInfo")?,
            utc: py.import("datetime")?.getattr("timezone")?.getattr("utc")?.unbind(),
            timezone: attr("datetime", "timezone")?,
            column: column.unbind(),
            isolation_level: attr("psycopg", "IsolationLevel")?,
            transaction_status: attr("psycopg.pq", "TransactionStatus")?,
            leaf_types,
        })
    })
}
