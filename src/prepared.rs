//! Per-session cache of named prepared statements, for `prepare_threshold` (psycopg's
//! meaning: a statement run that many times on a session is prepared, and later runs skip
//! parsing and planning; `None`, Django's default, never prepares — which is what
//! transaction-mode PgBouncer needs).
//!
//! Keyed by SQL text and parameter type OIDs. Bounded: at most `MAX_PREPARED` statements
//! (least recently used ones are closed) and `MAX_COUNTED` counters.

use std::collections::HashMap;
use tokio_postgres::Statement;

const MAX_PREPARED: usize = 100;
const MAX_COUNTED: usize = 1000;

type Key = (String, Vec<u32>);

#[derive(Default)]
pub struct StatementCache {
    counts: HashMap<Key, u32>,
    prepared: HashMap<Key, (Statement, u64)>,
    clock: u64,
}

/// What to run a statement with.
pub enum Route {
    /// The unnamed statement (parsed and planned by the server every time).
    Unnamed,
    /// Prepare it now (one extra round trip), then run it by name.
    Prepare,
    /// Already prepared on this session.
    Prepared(Statement),
}

impl StatementCache {
    pub fn route(&mut self, sql: &str, oids: &[u32], threshold: u32) -> Route {
        self.clock += 1;
        let key = (sql.to_owned(), oids.to_vec());
        if let Some((stmt, used)) = self.prepared.get_mut(&key) {
            *used = self.clock;
            return Route::Prepared(stmt.clone());
        }
        if self.counts.len() >= MAX_COUNTED && !self.counts.contains_key(&key) {
            self.counts.clear();
        }
        let seen = self.counts.entry(key).or_insert(0);
        *seen += 1;
        if *seen > threshold {
            Route::Prepare
        } else {
            Route::Unnamed
        }
    }

    /// Remembers a statement prepared after `plan` said `Prepare`; the least recently
    /// used one is dropped (tokio-postgres then closes it on the server) when full.
    pub fn insert(&mut self, sql: &str, oids: &[u32], stmt: Statement) {
        let key = (sql.to_owned(), oids.to_vec());
        self.counts.remove(&key);
        if self.prepared.len() >= MAX_PREPARED {
            if let Some(oldest) = self.prepared.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) {
                self.prepared.remove(&oldest);
            }
        }
        self.prepared.insert(key, (stmt, self.clock));
    }

    /// Forgets one statement (its plan no longer fits the schema).
    pub fn forget(&mut self, sql: &str, oids: &[u32]) {
        self.prepared.remove(&(sql.to_owned(), oids.to_vec()));
    }

    /// Forgets everything: after DDL on this session, or DISCARD/DEALLOCATE.
    pub fn clear(&mut self) {
        self.prepared.clear();
        self.counts.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.prepared.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_threshold() {
        let mut c = StatementCache::default();
        assert!(matches!(c.route("SELECT 1", &[], 2), Route::Unnamed));
        assert!(matches!(c.route("SELECT 1", &[], 2), Route::Unnamed));
        assert!(matches!(c.route("SELECT 1", &[], 2), Route::Prepare));
        assert!(matches!(c.route("SELECT 1", &[23], 0), Route::Prepare)); // other types: other key
        assert!(c.is_empty());
    }
}
