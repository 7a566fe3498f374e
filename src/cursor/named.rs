//! Server-side (named) cursors: what a DECLARE needs, and how it is worded.

use super::Cursor;
use crate::bind::{self, BoundQuery};
use crate::session::TxStatus;
use crate::sql::classify;
use crate::sql::literal::quote_identifier;
use pyo3::prelude::*;

pub(super) struct Named {
    pub(super) name: String,
    pub(super) scrollable: Option<bool>,
    pub(super) withhold: bool,
    pub(super) declared: bool,
    pub(super) exhausted: bool,
    /// N+1 detection: the scope that recorded the DECLARE sees the fetched rows too.
    pub(super) nplusone: Option<crate::nplusone::FetchWatch>,
    /// The declared query and its parameter types, and its result formats (found at the
    /// first FETCH), for its FETCHes.
    pub(super) query: Option<(String, Vec<u32>)>,
    pub(super) formats: Option<crate::formats::Formats>,
}

impl Named {
    pub(super) fn new(name: String, scrollable: Option<bool>, withhold: bool) -> Self {
        Named { name, scrollable, withhold, declared: false, exhausted: false, nplusone: None, query: None, formats: None }
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
    /// Makes sure up to `want` rows are buffered (server-side cursors fetch in batches).
    pub(super) fn fill(&mut self, py: Python<'_>, want: usize) -> PyResult<()> {
        let Some(named) = &self.named else { return Ok(()) };
        if !named.declared || named.exhausted || self.rows.len() >= want {
            return Ok(());
        }
        let count = (want - self.rows.len()).max(self.itersize.max(1));
        let sql = format!("FETCH FORWARD {count} FROM {}", quote_identifier(&named.name));
        let q = bind::bind(py, &sql, None, None)?;
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
        let got = outcome.rows.len();
        if let Some(named) = &mut self.named {
            if got < count {
                named.exhausted = true;
            }
        }
        self.rowcount = self.rowcount.max(0) + got as i64;
        self.absorb_rows(outcome.rows, &outcome.formats);
        if let Some(watch) = self.named.as_mut().and_then(|n| n.nplusone.as_mut()) {
            let fresh = self.rows.len().saturating_sub(got);
            watch.fetched(self.rows.range(fresh..), self.columns.as_deref());
        }
        Ok(())
    }

    /// CLOSEs the declared server-side cursor where it can still exist (inside the
    /// transaction that declared it, or WITH HOLD).
    pub(super) fn close_declared(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(named) = &mut self.named else { return Ok(()) };
        let status = self.core.state.lock().status;
        let usable = !self.core.is_closed() && status != TxStatus::InError;
        if named.declared && usable && (named.withhold || status == TxStatus::InTrans) {
            named.declared = false;
            let sql = format!("CLOSE {}", quote_identifier(&named.name));
            let q = bind::bind(py, &sql, None, None)?;
            // The cursor may already be gone (transaction ended): that is fine.
            let _ = self.core.run(py, &q);
        }
        Ok(())
    }
}
