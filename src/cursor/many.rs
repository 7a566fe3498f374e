//! executemany's runs: one statement per parameter set, their row counts summed and, with
//! `returning`, their rows kept. As psycopg's executemany: the count is the sum of the
//! command tags' counts (a `SHOW` or `CREATE TABLE` counts 0), kept when a run fails, and
//! every run goes through the extended protocol (a text of several statements is the
//! server's error there).

use super::{never_client_side, Cursor};
use crate::bind::{self, BoundQuery};
use crate::row::ColInfo;
use crate::types::decode::Decoder;
use pyo3::prelude::*;
use tokio_postgres::Row;

impl Cursor {
    /// executemany's runs, one per parameter set (`returning`: every run's rows are kept).
    pub(super) fn run_many<'py>(
        &mut self,
        py: Python<'py>,
        text: &str,
        rows: impl Iterator<Item = PyResult<Bound<'py, PyAny>>>,
        returning: bool,
    ) -> PyResult<()> {
        let mut total: i64 = 0;
        let mut kept: Vec<Row> = Vec::new();
        let mut cols: Option<(Vec<ColInfo>, Vec<Decoder>)> = None;
        for params in rows {
            let params = params?;
            let q = bind::bind(py, text, Some(&params), self.core.hstore_oid())?;
            // The kept rows of every run decode with the first run's decoders: one format.
            let adjust = if returning { extended_returning } else { extended };
            if let Err(e) = self.run_or_literals(py, text, Some(&params), q, adjust, false, None) {
                self.rowcount = total;
                return Err(e);
            }
            total += self.tag_count.unwrap_or(0);
            if returning {
                if cols.is_none() {
                    if let Some(c) = &self.columns {
                        cols = Some((c.clone(), self.decoders.clone()));
                    }
                }
                kept.extend(self.rows.drain(..));
            }
        }
        self.reset_result();
        self.rowcount = total;
        if returning {
            if let Some((c, d)) = cols {
                self.columns = Some(c);
                self.decoders = d;
                self.rows.extend(kept);
                self.rownumber = Some(0);
            }
        }
        Ok(())
    }
}

fn extended(q: &mut BoundQuery) {
    q.shape.multi_statement = false;
}

fn extended_returning(q: &mut BoundQuery) {
    never_client_side(q);
    extended(q);
}
