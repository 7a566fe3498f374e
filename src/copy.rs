//! `cursor.copy(statement)`: COPY ... FROM STDIN / TO STDOUT, as a context manager.
//!
//! COPY TO runs on entry and buffers the data; COPY FROM collects writes and sends them on
//! a clean exit (an exception inside the block sends nothing).

use crate::session::ConnCore;
use crate::errors;
use crate::runtime;
use crate::sql::classify;
use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::collections::VecDeque;
use std::sync::Arc;

/// psycopg's `Copy` object (Python name kept for psycopg compatibility).
#[pyclass(module = "django_rustpg._native", name = "Copy")]
pub struct CopyOp {
    core: Arc<ConnCore>,
    sql: String,
    to_client: bool,
    outgoing: Vec<u8>,
    incoming: VecDeque<Bytes>,
    #[pyo3(get)]
    rowcount: i64,
}

impl CopyOp {
    pub fn new(core: Arc<ConnCore>, sql: String) -> Self {
        let to_client = classify::copy_to_client(&sql);
        CopyOp { core, sql, to_client, outgoing: Vec::new(), incoming: VecDeque::new(), rowcount: -1 }
    }
}

/// One row in COPY's text format.
fn push_text_row(out: &mut Vec<u8>, row: &Bound<'_, PyAny>) -> PyResult<()> {
    for (i, value) in row.try_iter()?.enumerate() {
        let value = value?;
        if i > 0 {
            out.push(b'\t');
        }
        if value.is_none() {
            out.extend_from_slice(b"\\N");
            continue;
        }
        let text = value.str()?.to_string();
        for b in text.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

#[pymethods]
impl CopyOp {
    fn __enter__(mut slf: PyRefMut<'_, Self>) -> PyResult<PyRefMut<'_, Self>> {
        if slf.to_client {
            let py = slf.py();
            let core = slf.core.clone();
            let sql = slf.sql.clone();
            let chunks = core.with_transaction(py, |session| {
                runtime::block_on(py, async {
                    let stream = session.client.copy_out(sql.as_str()).await?;
                    stream.try_collect::<Vec<Bytes>>().await
                })
            }, &sql)?;
            slf.incoming = chunks.into();
        }
        Ok(slf)
    }

    fn __exit__(&mut self, py: Python<'_>, exc_type: PyObject, _v: PyObject, _tb: PyObject) -> PyResult<()> {
        if self.to_client || !exc_type.is_none(py) {
            return Ok(());
        }
        let data = Bytes::from(std::mem::take(&mut self.outgoing));
        let core = self.core.clone();
        let sql = self.sql.clone();
        let rows = core.with_transaction(py, |session| {
            runtime::block_on(py, async {
                let sink = session.client.copy_in::<_, Bytes>(sql.as_str()).await?;
                let mut sink = std::pin::pin!(sink);
                if !data.is_empty() {
                    sink.send(data).await?;
                }
                sink.as_mut().finish().await
            })
        }, &sql)?;
        self.rowcount = rows as i64;
        Ok(())
    }

    /// Appends raw data in the COPY format of the statement.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.to_client {
            return Err(errors::programming(py, "cannot write to a COPY ... TO STDOUT"));
        }
        if let Ok(s) = data.downcast::<PyString>() {
            self.outgoing.extend_from_slice(s.to_cow()?.as_bytes());
        } else {
            let b: Vec<u8> = data.extract()?;
            self.outgoing.extend_from_slice(&b);
        }
        Ok(())
    }

    /// Appends one row (text format: tab-separated, `\N` for NULL).
    fn write_row(&mut self, py: Python<'_>, row: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.to_client {
            return Err(errors::programming(py, "cannot write to a COPY ... TO STDOUT"));
        }
        push_text_row(&mut self.outgoing, row)
    }

    /// The next block of data, `b""` when done.
    fn read<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        match self.incoming.pop_front() {
            Some(chunk) => PyBytes::new(py, &chunk),
            None => PyBytes::new(py, b""),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.incoming.pop_front().map(|c| PyBytes::new(py, &c))
    }
}
