//! Server-side (named) cursors: what a DECLARE needs, how it is worded, and how its rows are
//! fetched. Each fetch is what psycopg's `ServerCursor` (stock Django's named cursor) sends:
//! fetchone is `FETCH FORWARD 1`, fetchmany(n) `FETCH FORWARD n`, fetchall `FETCH FORWARD
//! ALL`, iteration fetches pages of `itersize` apart from them; nothing is read ahead, so an
//! error in a later row, or the cursor gone with its transaction, is met at the same call as
//! there; rowcount stays -1.

use super::Cursor;
use crate::bind::{self, wire_type, BoundQuery};
use crate::errors;
use crate::row::{col_infos, describe};
use crate::runtime;
use crate::session::TxStatus;
use crate::sql::classify::{self, TxEffect};
use crate::sql::literal::quote_identifier;
use postgres_types::Type;
use pyo3::prelude::*;
use std::collections::VecDeque;
use tokio_postgres::Row;

pub(super) struct Named {
    pub(super) name: String,
    pub(super) scrollable: Option<bool>,
    pub(super) withhold: bool,
    /// A cursor of this name is ours to CLOSE (declared here, or fetched from once).
    pub(super) declared: bool,
    /// N+1 detection: the scope that recorded the DECLARE sees the fetched rows too.
    pub(super) nplusone: Option<crate::nplusone::FetchWatch>,
    /// The declared query and its parameter types, and its result formats (found at the
    /// first FETCH), for its FETCHes.
    pub(super) query: Option<(String, Vec<u32>)>,
    pub(super) formats: Option<crate::formats::Formats>,
    /// Iteration's page (psycopg's `_iter_rows`) and the length it was fetched with.
    page: Option<(VecDeque<Row>, usize)>,
}

impl Named {
    pub(super) fn new(name: String, scrollable: Option<bool>, withhold: bool) -> Self {
        Named { name, scrollable, withhold, declared: false, nplusone: None, query: None, formats: None, page: None }
    }

    /// Executed (again): a fresh cursor's state.
    pub(super) fn declared_for(&mut self, q: &BoundQuery) {
        self.query = Some((q.sql.clone(), q.params.iter().map(|p| p.oid).collect()));
        self.formats = None;
        self.declared = true;
        self.page = None;
    }

    /// `DECLARE name [NO] SCROLL CURSOR [WITH HOLD] FOR <q>`, with q's parameters.
    pub(super) fn declare(&self, q: &BoundQuery) -> BoundQuery {
        let scroll = match self.scrollable {
            Some(true) => " SCROLL",
            Some(false) => " NO SCROLL",
            None => "",
        };
        let hold = if self.withhold { " WITH HOLD" } else { "" };
        BoundQuery {
            sql: format!("DECLARE {}{scroll} CURSOR{hold} FOR {}", quote_identifier(&self.name), q.sql),
            params: q.params.clone(),
            shape: q.shape.clone(),
            effects: classify::Effects { dirties_session: self.withhold, ..classify::Effects::NONE },
            inline: None,
            untyped_unsure: q.untyped_unsure,
        }
    }
}

impl Cursor {
    /// One FETCH of `count` rows (ALL when None) from the server-side cursor. A name this
    /// cursor did not declare is fetched from all the same (psycopg's: the server says
    /// whether such a cursor exists).
    fn fetch_named(&mut self, py: Python<'_>, count: Option<usize>) -> PyResult<Vec<Row>> {
        let Some(named) = &self.named else { return Ok(Vec::new()) };
        let how = count.map_or_else(|| "ALL".to_string(), |n| n.to_string());
        let sql = format!("FETCH FORWARD {how} FROM {}", quote_identifier(&named.name));
        // Only a cursor not declared here opens a transaction first (psycopg's describe of
        // a portal it did not declare runs as a query).
        let q = bind::bind(py, &sql, None, None)?;
        let q = if named.declared { outside(q) } else { q };
        // The rows come in the formats of the declared query's columns.
        let formats = match (&named.formats, &named.query) {
            (Some(f), _) => Some(f.clone()),
            (None, Some((sql, oids))) => Some(self.core.result_formats(py, sql, oids)?),
            (None, None) => None,
        };
        if let Some(named) = &mut self.named {
            named.formats = formats.clone();
        }
        let outcome = self.core.run_formats(py, &q, formats, None)?;
        if let Some(named) = &mut self.named {
            named.declared = true;
        }
        self.learn_columns(&outcome.rows, &outcome.formats);
        if let Some(watch) = self.named.as_mut().and_then(|n| n.nplusone.as_mut()) {
            watch.fetched(outcome.rows.iter(), self.columns.as_deref());
        }
        Ok(outcome.rows)
    }

    /// Makes sure up to `want` rows are buffered: one FETCH of what is missing.
    pub(super) fn fill(&mut self, py: Python<'_>, want: usize) -> PyResult<()> {
        if self.named.is_none() || self.rows.len() >= want {
            return Ok(());
        }
        let rows = self.fetch_named(py, Some(want - self.rows.len()))?;
        self.rows.extend(rows);
        Ok(())
    }

    /// fetchall: one `FETCH FORWARD ALL`.
    pub(super) fn fill_all(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.named.is_some() {
            let rows = self.fetch_named(py, None)?;
            self.rows.extend(rows);
        }
        Ok(())
    }

    /// `next(cursor)`: psycopg's page of `itersize` rows, kept apart from fetchone/fetchmany
    /// (a new page is fetched once a full one is used up; a short page was the last).
    pub(super) fn next_named(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        self.check_open(py)?;
        let itersize = self.itersize;
        let need = match self.named.as_ref().and_then(|n| n.page.as_ref()) {
            None => true,
            Some((rows, len)) => rows.is_empty() && *len >= itersize,
        };
        if need {
            let rows = self.fetch_named(py, Some(itersize))?;
            let len = rows.len();
            if let Some(named) = &mut self.named {
                named.page = Some((VecDeque::from(rows), len));
            }
        }
        let row = self.named.as_mut().and_then(|n| n.page.as_mut()).and_then(|(rows, _)| rows.pop_front());
        match row {
            None => Ok(None),
            Some(row) => Ok(self.rows_to_tuples(py, VecDeque::from([row]))?.into_iter().next()),
        }
    }

    /// `scroll(value, mode)`: `MOVE [ABSOLUTE] value` on the server, as psycopg (a NO SCROLL
    /// cursor refuses to move back there).
    pub(super) fn scroll_named(&mut self, py: Python<'_>, value: i64, absolute: bool) -> PyResult<()> {
        let Some(named) = &self.named else { return Ok(()) };
        let sql = format!("MOVE{} {value} FROM {}", if absolute { " ABSOLUTE" } else { "" }, quote_identifier(&named.name));
        self.core.run(py, &outside(bind::bind(py, &sql, None, None)?))?;
        let at = if absolute { value } else { self.rownumber.unwrap_or(0) as i64 + value };
        self.rownumber = Some(at.max(0) as usize);
        Ok(())
    }

    /// The declared query's description, without fetching any of its rows (psycopg has it
    /// from a Describe of the portal right after the DECLARE).
    pub(super) fn describe_named(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some((sql, oids)) = self.named.as_ref().filter(|n| n.declared).and_then(|n| n.query.clone()) else { return Ok(()) };
        let session = self.core.session(py)?;
        let types: Vec<Type> = oids.iter().map(|o| wire_type(*o)).collect();
        let stmt = runtime::block_on(py, async { session.client.prepare_typed(&sql, &types).await })
            .map_err(|e| errors::from_pg(py, &e, Some(&sql)))?;
        let cols = col_infos(stmt.columns());
        if !cols.is_empty() {
            self.description = Some(describe(py, &cols, self.core.hstore_oid())?);
        }
        Ok(())
    }

    /// CLOSEs the declared server-side cursor where it can still exist (inside the
    /// transaction that declared it, or WITH HOLD).
    pub(super) fn close_declared(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(named) = &mut self.named else { return Ok(()) };
        let status = self.core.state.lock().status;
        let usable = !self.core.is_closed() && status != TxStatus::InError;
        let declared = std::mem::replace(&mut named.declared, false);
        if declared && usable && (named.withhold || status == TxStatus::InTrans) {
            let sql = format!("CLOSE {}", quote_identifier(&named.name));
            let q = outside(bind::bind(py, &sql, None, None)?);
            // The cursor may already be gone (transaction ended): that is fine.
            let _ = self.core.run(py, &q);
        }
        Ok(())
    }
}

/// FETCH / MOVE / CLOSE open no transaction (psycopg sends them with `_exec_command`): after
/// a commit, a cursor without hold is simply gone, and no transaction is left aborted.
fn outside(mut q: BoundQuery) -> BoundQuery {
    q.effects.tx = TxEffect::Outside;
    q
}
