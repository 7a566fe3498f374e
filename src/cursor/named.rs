//! Server-side (named) cursors: what a DECLARE needs, and how it is worded.

use crate::bind::BoundQuery;
use crate::sql::classify;
use crate::sql::literal::quote_identifier;

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
        }
    }
}
