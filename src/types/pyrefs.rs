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
}

static REFS: GILOnceCell<PyRefs> = GILOnceCell::new();

pub fn get(py: Python<'_>) -> PyResult<&PyRefs> {
    REFS.get_or_try_init(py, || {
        let attr = |module: &str, name: &str| -> PyResult<Py<PyAny>> { Ok(py.import(module)?.getattr(name)?.unbind()) };
        let column = py
            .import("collections")?
            .getattr("namedtuple")?
            .call1(("Column", ("name", "type_code", "display_size", "internal_size", "precision", "scale", "null_ok")))?;
        column.setattr("__module__", "django_rustpg._native")?;
        Ok(PyRefs {
            decimal: attr("decimal", "Decimal")?,
            uuid: attr("uuid", "UUID")?,
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
        })
    })
}
