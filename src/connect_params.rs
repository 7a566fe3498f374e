//! `connect(**params)` keywords: parsed and validated here, the one place connection options
//! are checked (Python's options.py keeps only Django's own keys).

use crate::{errors, hosts, tls};
use crate::pool::{ConnectSpec, PoolSpec};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::Duration;

fn opt_str(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<String>> {
    match d.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(v.str()?.to_string())),
    }
}

fn secs(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Duration> {
    let f: f64 = v.extract().map_err(|_| errors::programming(v.py(), format!("pool option '{key}' must be a number of seconds")))?;
    if !(f >= 0.0 && f.is_finite()) {
        return Err(errors::programming(v.py(), format!("pool option '{key}' must be a non-negative number of seconds")));
    }
    Ok(Duration::from_secs_f64(f))
}

/// `kw` with the keys of its service (`service`, else PGSERVICE) added where `kw` has none.
fn with_service<'py>(py: Python<'py>, kw: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let merged = kw.copy()?;
    let Some(name) = opt_str(kw, "service")?.or_else(|| std::env::var("PGSERVICE").ok()) else {
        return Ok(merged);
    };
    let pairs = crate::service_file::lookup(&name).map_err(|e| errors::operational(py, e))?;
    for (key, value) in pairs {
        if !SERVICE_FILE_KEYWORDS.contains(&key.as_str()) {
            return Err(errors::operational(py, format!("invalid connection option \"{key}\"")));
        }
        if opt_str(kw, &key)?.is_none() {
            merged.set_item(key, value)?;
        }
    }
    Ok(merged)
}

/// Keys a service file may set (connection parameters, not the driver's own options).
const SERVICE_FILE_KEYWORDS: [&str; 16] = [
    "dbname", "user", "password", "host", "port", "options", "application_name", "sslmode", "sslrootcert",
    "connect_timeout", "hostaddr", "target_session_attrs", "load_balance_hosts", "keepalives", "keepalives_idle",
    "sslcert",
];

const KNOWN_KEYWORDS: [&str; 27] = [
    "health_check",
    "dbname", "user", "password", "host", "port", "options", "application_name", "sslmode", "sslrootcert",
    "connect_timeout", "client_encoding", "timezone", "pool", "reset_on_return", "autocommit", "cursor_factory",
    "context", "prepare_threshold", "isolation_level", "hostaddr", "service", "target_session_attrs", "keepalives",
    "keepalives_idle", "sslcert", "load_balance_hosts",
];

pub struct ConnectRequest {
    pub spec: ConnectSpec,
    pub pool_spec: PoolSpec,
    pub implicit_pool: bool,
    pub health_check: bool,
    pub reuse: bool,
    pub reset_always: bool,
    pub autocommit: bool,
    pub isolation_level: Option<i64>,
    pub cursor_factory: Option<PyObject>,
    pub prepare_threshold: Option<u32>,
}

pub fn parse_connect(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<ConnectRequest> {
    let empty = PyDict::new(py);
    let kw = kwargs.unwrap_or(&empty);
    for key in kw.keys() {
        let k: String = key.extract()?;
        if !KNOWN_KEYWORDS.contains(&k.as_str()) {
            return Err(errors::programming(py, format!("invalid connection option \"{k}\"")));
        }
    }
    let kw = &with_service(py, kw)?;
    if let Some(enc) = opt_str(kw, "client_encoding")? {
        let norm = enc.to_ascii_lowercase().replace(['-', '_'], "");
        if norm != "utf8" && norm != "unicode" {
            return Err(errors::not_supported(py, format!("client_encoding {enc} is not supported: the driver speaks UTF8")));
        }
    }
    let options = opt_str(kw, "options")?.unwrap_or_default();
    let spec = ConnectSpec {
        host: opt_str(kw, "host")?.or_else(|| std::env::var("PGHOST").ok()),
        port: opt_str(kw, "port")?.or_else(|| std::env::var("PGPORT").ok()),
        user: opt_str(kw, "user")?,
        password: opt_str(kw, "password")?.or_else(|| std::env::var("PGPASSWORD").ok()),
        dbname: opt_str(kw, "dbname")?.or_else(|| std::env::var("PGDATABASE").ok()),
        options: if options.is_empty() { None } else { Some(options) },
        application_name: opt_str(kw, "application_name")?,
        sslmode: opt_str(kw, "sslmode")?.or_else(|| std::env::var("PGSSLMODE").ok()).unwrap_or_else(|| "prefer".into()),
        sslrootcert: opt_str(kw, "sslrootcert")?,
        timezone: opt_str(kw, "timezone")?,
        connect_timeout: match opt_str(kw, "connect_timeout")? {
            None => None,
            Some(t) => Some(t.parse().map_err(|_| errors::programming(py, format!("invalid connect_timeout: {t}")))?),
        },
        hostaddr: opt_str(kw, "hostaddr")?.or_else(|| std::env::var("PGHOSTADDR").ok()),
        target_session_attrs: opt_str(kw, "target_session_attrs")?.or_else(|| std::env::var("PGTARGETSESSIONATTRS").ok()),
        load_balance_hosts: opt_str(kw, "load_balance_hosts")?.or_else(|| std::env::var("PGLOADBALANCEHOSTS").ok()),
        keepalives: opt_str(kw, "keepalives")?,
        keepalives_idle: opt_str(kw, "keepalives_idle")?,
    };
    let mut pool_spec = PoolSpec::default();
    let mut reuse = true;
    if let Some(p) = kw.get_item("pool")? {
        if let Ok(d) = p.downcast::<PyDict>() {
            for (k, v) in d.iter() {
                let k: String = k.extract()?;
                match k.as_str() {
                    "min_size" => pool_spec.min_size = v.extract()?,
                    "max_size" => pool_spec.max_size = v.extract()?,
                    "timeout" => pool_spec.timeout = secs(&v, &k)?,
                    "max_lifetime" => pool_spec.max_lifetime = Some(secs(&v, &k)?),
                    "max_idle" => pool_spec.max_idle = Some(secs(&v, &k)?),
                    other => return Err(errors::programming(py, format!("unknown pool option \"{other}\""))),
                }
            }
            if pool_spec.max_size == 0 || pool_spec.min_size > pool_spec.max_size {
                return Err(errors::programming(py, "pool max_size must be at least 1 and at least min_size"));
            }
        } else if !p.is_truthy()? {
            reuse = false;
        }
    }
    let reset_always = match opt_str(kw, "reset_on_return")?.as_deref() {
        None | Some("auto") => false,
        Some("always") => true,
        Some(other) => return Err(errors::programming(py, format!("reset_on_return must be 'auto' or 'always', not {other:?}"))),
    };
    let autocommit = match kw.get_item("autocommit")? {
        Some(v) => v.is_truthy()?,
        None => false,
    };
    let isolation_level = match kw.get_item("isolation_level")? {
        Some(v) if !v.is_none() => Some(v.extract::<i64>()?),
        _ => None,
    };
    let cursor_factory = kw.get_item("cursor_factory")?.filter(|f| !f.is_none()).map(|f| f.unbind());
    let prepare_threshold = match kw.get_item("prepare_threshold")? {
        Some(v) if !v.is_none() => Some(
            v.extract::<u32>()
                .map_err(|_| errors::programming(py, "prepare_threshold must be None or a non-negative integer"))?,
        ),
        _ => None,
    };

    let implicit_pool = kw.get_item("pool")?.is_none();
    let health_check = match kw.get_item("health_check")? {
        Some(v) => v.is_truthy()?,
        None => false,
    };
    Ok(ConnectRequest {
        spec,
        pool_spec,
        implicit_pool,
        health_check,
        reuse,
        reset_always,
        autocommit,
        isolation_level,
        cursor_factory,
        prepare_threshold,
    })
}

/// Checks one libpq keyword's value without connecting: Django's OPTIONS are checked when the
/// settings are read, by the same rules `connect()` applies (ProgrammingError naming the key).
#[pyfunction]
pub fn check_connect_value(py: Python<'_>, key: &str, value: &str) -> PyResult<()> {
    let checked = match key {
        "sslmode" => tls::parse_sslmode(value, false).map(|_| ()),
        "target_session_attrs" => hosts::target_session_attrs(Some(value)).map(|_| ()),
        "load_balance_hosts" => hosts::load_balance_hosts(Some(value)).map(|_| ()),
        "keepalives" => hosts::keepalives(Some(value), None).map(|_| ()),
        "keepalives_idle" => hosts::keepalives(None, Some(value)).map(|_| ()),
        other => Err(format!("invalid connection option \"{other}\"")),
    };
    checked.map_err(|message| errors::programming(py, message))
}
