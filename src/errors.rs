//! The one place that turns driver failures into Python exceptions.
//!
//! Server errors become psycopg's own `errors` classes looked up by SQLSTATE, so that
//! `isinstance(e, psycopg.errors.UniqueViolation)` and `e.diag.sqlstate` work and Django's
//! `DatabaseErrorWrapper` (which looks classes up by PEP 249 name) maps them as usual.

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyType};
use tokio_postgres::error::{DbError, ErrorPosition};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Interface,
    Programming,
    Data,
    Operational,
    NotSupported,
    Internal,
    Database,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Interface => "InterfaceError",
            Kind::Programming => "ProgrammingError",
            Kind::Data => "DataError",
            Kind::Operational => "OperationalError",
            Kind::NotSupported => "NotSupportedError",
            Kind::Internal => "InternalError",
            Kind::Database => "DatabaseError",
        }
    }
}

static PSYCOPG_ERRORS: GILOnceCell<Py<PyModule>> = GILOnceCell::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    PSYCOPG_ERRORS
        .get_or_try_init(py, || Ok(py.import("psycopg.errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// A PEP 249 exception of the given kind.
pub fn new_err(py: Python<'_>, kind: Kind, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    match errors_module(py).and_then(|m| m.getattr(kind.class_name())) {
        Ok(cls) => match cls.call1((msg.clone(),)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

pub fn interface(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    new_err(py, Kind::Interface, msg)
}
pub fn programming(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    new_err(py, Kind::Programming, msg)
}
pub fn data(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    new_err(py, Kind::Data, msg)
}
pub fn operational(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    new_err(py, Kind::Operational, msg)
}
pub fn not_supported(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    new_err(py, Kind::NotSupported, msg)
}

/// No pooled connection became free in time (`dbapi.PoolTimeout`, an OperationalError).
pub fn pool_timeout(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    match py.import("django_rustpg.dbapi").and_then(|m| m.getattr("PoolTimeout")).and_then(|c| c.call1((msg.clone(),))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => operational(py, msg),
    }
}

/// Maps a tokio-postgres error. `query` is the text sent, for the `LINE n:` pointer.
pub fn from_pg(py: Python<'_>, err: &tokio_postgres::Error, query: Option<&str>) -> PyErr {
    if let Some(db) = err.as_db_error() {
        return from_db_error(py, db, query);
    }
    if err.is_closed() {
        return operational(py, "the connection is lost: the server closed it or the network failed");
    }
    let text = err.to_string();
    let source = std::error::Error::source(err).map(|s| format!(": {s}")).unwrap_or_default();
    operational(py, format!("{text}{source}"))
}

/// A failed pool checkout: the pool is exhausted, or the server could not be reached
/// (worded as libpq words it, naming the host and port).
pub fn from_checkout(
    py: Python<'_>,
    err: deadpool::managed::PoolError<tokio_postgres::Error>,
    host: Option<&str>,
    port: Option<&str>,
    wait: std::time::Duration,
    size: usize,
    max_size: usize,
) -> PyErr {
    use deadpool::managed::{PoolError, TimeoutType};
    match err {
        PoolError::Timeout(TimeoutType::Wait) => pool_timeout(
            py,
            format!(
                "couldn't get a connection after {:.1}s: all {size} connections of the pool (max_size={max_size}) are in use",
                wait.as_secs_f64()
            ),
        ),
        PoolError::Timeout(_) => operational(py, format!("{}: timeout expired", connect_target(host, port))),
        // Failing to connect is an OperationalError whatever the server said (as libpq).
        PoolError::Backend(e) => operational(py, connect_failure(host, port, &e)),
        other => operational(py, other.to_string()),
    }
}

/// The I/O error behind a driver error, if a socket failure caused it.
pub fn io_cause(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = err.source();
    }
    None
}

fn connect_target(host: Option<&str>, port: Option<&str>) -> String {
    let port = port.filter(|p| !p.is_empty()).unwrap_or("5432");
    match host.filter(|h| !h.is_empty()) {
        None => format!("connection to server on socket \"/var/run/postgresql/.s.PGSQL.{port}\" failed"),
        Some(h) if h.starts_with('/') => format!("connection to server on socket \"{h}/.s.PGSQL.{port}\" failed"),
        Some(h) if h.contains(',') => {
            let hosts: Vec<String> = h.split(',').map(|x| format!("\"{}\"", x.trim())).collect();
            format!("connection to servers at {}, port {port} failed", hosts.join(", "))
        }
        Some(h) => format!("connection to server at \"{h}\", port {port} failed"),
    }
}

fn connect_failure(host: Option<&str>, port: Option<&str>, e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}:  {}", connect_target(host, port), db.severity(), db.message());
    }
    if let Some(io) = io_cause(e) {
        let text = io.to_string();
        if text.contains("lookup address") {
            let detail = text.rsplit(": ").next().unwrap_or(&text);
            let name = host.unwrap_or_default();
            return format!("could not translate host name \"{name}\" to address: {detail}");
        }
        let socket = host.is_none_or(|h| h.is_empty() || h.starts_with('/'));
        let hint = match io.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound if socket => {
                "\n\tIs the server running locally and accepting connections on that socket?"
            }
            std::io::ErrorKind::ConnectionRefused => {
                "\n\tIs the server running on that host and accepting TCP/IP connections?"
            }
            _ => "",
        };
        let reason = text.split(" (os error").next().unwrap_or(&text);
        return format!("{}: {reason}{hint}", connect_target(host, port));
    }
    format!("{}: {e}", connect_target(host, port))
}

fn class_for_state<'py>(py: Python<'py>, sqlstate: &str) -> PyResult<Bound<'py, PyType>> {
    let module = errors_module(py)?;
    match module.call_method1("lookup", (sqlstate,)) {
        Ok(cls) => Ok(cls.downcast_into::<PyType>()?),
        Err(_) => Ok(module.call_method1("get_base_exception", (sqlstate,))?.downcast_into::<PyType>()?),
    }
}

/// The SQLSTATE a raised database error carries (psycopg's `Error.sqlstate`), if any.
pub fn sqlstate(py: Python<'_>, err: &PyErr) -> Option<String> {
    err.value(py).getattr("sqlstate").ok()?.extract().ok()
}

fn from_db_error(py: Python<'_>, db: &DbError, query: Option<&str>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = class_for_state(py, db.code().code())?;
        let info = PyDict::new(py);
        let put = |field: u8, value: Option<&str>| -> PyResult<()> {
            if let Some(v) = value {
                info.set_item(field as i64, pyo3::types::PyBytes::new(py, v.as_bytes()))?;
            }
            Ok(())
        };
        put(b'S', Some(db.severity()))?;
        put(b'V', db.parsed_severity().map(|_| db.severity()))?;
        put(b'C', Some(db.code().code()))?;
        put(b'M', Some(db.message()))?;
        put(b'D', db.detail())?;
        put(b'H', db.hint())?;
        let position = match db.position() {
            Some(ErrorPosition::Original(p)) => Some(p.to_string()),
            _ => None,
        };
        put(b'P', position.as_deref())?;
        if let Some(ErrorPosition::Internal { position, query }) = db.position() {
            put(b'p', Some(&position.to_string()))?;
            put(b'q', Some(query))?;
        }
        put(b'W', db.where_())?;
        put(b's', db.schema())?;
        put(b't', db.table())?;
        put(b'c', db.column())?;
        put(b'd', db.datatype())?;
        put(b'n', db.constraint())?;
        put(b'F', db.file())?;
        put(b'L', db.line().map(|l| l.to_string()).as_deref())?;
        put(b'R', db.routine())?;

        let message = render_message(db, query);
        let kwargs = PyDict::new(py);
        kwargs.set_item("info", info)?;
        let exc = cls.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// The message as libpq formats it: primary text, a `LINE n:` pointer, DETAIL, HINT, CONTEXT.
fn render_message(db: &DbError, query: Option<&str>) -> String {
    let mut out = db.message().to_string();
    if let (Some(ErrorPosition::Original(pos)), Some(q)) = (db.position(), query) {
        if let Some(pointer) = line_pointer(q, *pos as usize) {
            out.push('\n');
            out.push_str(&pointer);
        }
    }
    if let Some(d) = db.detail() {
        out.push_str("\nDETAIL:  ");
        out.push_str(d);
    }
    if let Some(h) = db.hint() {
        out.push_str("\nHINT:  ");
        out.push_str(h);
    }
    if let Some(w) = db.where_() {
        out.push_str("\nCONTEXT:  ");
        out.push_str(w);
    }
    out
}

fn line_pointer(query: &str, position: usize) -> Option<String> {
    // `position` counts characters from 1.
    let chars: Vec<char> = query.chars().collect();
    if position == 0 || position > chars.len() + 1 {
        return None;
    }
    let idx = position - 1;
    let line_no = chars[..idx].iter().filter(|&&c| c == '\n').count() + 1;
    let line_start = chars[..idx].iter().rposition(|&c| c == '\n').map(|p| p + 1).unwrap_or(0);
    let line_end = chars[idx..].iter().position(|&c| c == '\n').map(|p| p + idx).unwrap_or(chars.len());
    let line: String = chars[line_start..line_end].iter().collect();
    let prefix = format!("LINE {line_no}: ");
    let caret_col = prefix.chars().count() + (idx - line_start);
    Some(format!("{prefix}{line}\n{}^", " ".repeat(caret_col)))
}

#[cfg(test)]
mod tests {
    use super::line_pointer;

    #[test]
    fn pointer_under_the_error() {
        assert_eq!(line_pointer("selec 1", 1).unwrap(), "LINE 1: selec 1\n        ^");
        assert_eq!(line_pointer("SELECT\nfoo bar", 12).unwrap(), "LINE 2: foo bar\n            ^");
        assert!(line_pointer("x", 5).is_none());
    }
}
