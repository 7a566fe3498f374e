//! django_rustpg's native core: a PostgreSQL driver (pool, binding, binary decoding) with a
//! PEP 249 surface for Django, plus the SQL tools the backend builds on.
//!
//! Layers point one way (`tests/test_layering.py` checks there is no circle):
//! `connection`/`cursor`/`copy`/`materialize`/`nplusone` (PyO3) → `session`/`connect_params`/`row`
//! → `bind`/`types`/`errors` → `pool`/`runtime` → `codec`/`sql` (pure Rust, no Python).

pub mod bind;
pub mod cancel;
pub mod codec;
pub mod connect_params;
pub mod connection;
pub mod copy;
pub mod cursor;
pub mod early_build;
pub mod errors;
pub mod formats;
pub mod fxhash;
pub mod hosts;
pub mod nplusone;
pub mod materialize;
pub mod memory;
pub mod pool;
pub mod prepared;
pub mod row;
pub mod runtime;
pub mod service_file;
pub mod session;
pub mod sql;
pub mod tls;
pub mod types;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<connection::Connection>()?;
    m.add_class::<connection::ConnectionInfo>()?;
    m.add_class::<connection::Notifies>()?;
    m.add_class::<cursor::Cursor>()?;
    m.add_class::<materialize::MaterializePlan>()?;
    m.add_class::<copy::CopyOp>()?;
    m.add_function(wrap_pyfunction!(connection::connect, m)?)?;
    m.add_function(wrap_pyfunction!(connection::close_all_pools, m)?)?;
    m.add_function(wrap_pyfunction!(connection::close_idle_sessions, m)?)?;
    m.add_function(wrap_pyfunction!(connection::close_pool, m)?)?;
    m.add_function(wrap_pyfunction!(mogrify, m)?)?;
    m.add_function(wrap_pyfunction!(connect_params::check_connect_value, m)?)?;
    m.add_function(wrap_pyfunction!(types::decode::extension_text, m)?)?;
    m.add_class::<nplusone::Scope>()?;
    m.add_class::<nplusone::CallOrigin>()?;
    m.add_function(wrap_pyfunction!(nplusone::nplusone_install, m)?)?;
    m.add_function(wrap_pyfunction!(nplusone::nplusone_active, m)?)?;
    m.add_function(wrap_pyfunction!(nplusone::fingerprint_sql, m)?)?;
    m.add_function(wrap_pyfunction!(nplusone::analyze_sql, m)?)?;
    m.add_function(wrap_pyfunction!(nplusone::capture_origin, m)?)?;
    nplusone::add_flags(m)?;
    m.add("EARLY_BATCH", session::EARLY_BATCH)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Client-side rendering of `query % params` with SQL literals (display and compose_sql).
#[pyfunction]
#[pyo3(signature = (query, params=None, hstore_oid=None))]
fn mogrify(py: Python<'_>, query: &Bound<'_, PyAny>, params: Option<&Bound<'_, PyAny>>, hstore_oid: Option<u32>) -> PyResult<String> {
    let text = bind::query_text(py, query)?;
    bind::mogrify(py, &text, params, hstore_oid)
}
