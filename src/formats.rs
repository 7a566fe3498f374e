//! Result-column formats for Bind: binary for the columns whose decoder reads binary, text
//! for the rest (`Decoder::for_type` decides). Bind must carry them before the result
//! arrives, so a statement's column types are described once per (database, SQL text,
//! parameter types) and remembered process-wide; later runs stay one round trip.
//!
//! Staleness: DDL run through this process forgets its database's entries; a run whose
//! columns no longer match forgets its entry (the cursor decodes that run by the formats
//! actually sent); "no binary output function" forgets it and the caller retries.

use crate::pool::ConnectSpec;
use crate::fxhash::{FxHasher, FxMap};
use crate::types::decode::Decoder;
use parking_lot::Mutex;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use tokio_postgres::Column;

/// Format codes as Bind sends them: one code for every column, or one per column.
pub type Formats = Arc<[i16]>;

/// Entries per database; the map is cleared when full (Django's statement set is small).
const MAX_ENTRIES: usize = 4096;

struct Entry {
    sql: String,
    param_oids: Box<[u32]>,
    formats: Formats,
    /// Every column decodes to the same object from text (`Decoder::same_from_text`).
    text_safe: bool,
    /// Column types that are not built in (extensions, enums, domains, composites): a
    /// session must have loaded them before running the statement undescribed.
    looked_up: Box<[u32]>,
}

type Cache = FxMap<u64, FxMap<u64, Entry>>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub fn all_binary() -> Formats {
    static ONE: OnceLock<Formats> = OnceLock::new();
    ONE.get_or_init(|| Arc::from([1i16])).clone()
}

/// Text for every column (the simple protocol's only format).
pub fn all_text() -> Formats {
    static ONE: OnceLock<Formats> = OnceLock::new();
    ONE.get_or_init(|| Arc::from([0i16])).clone()
}

/// Which server database a connection reads types from (type OIDs are per database; the
/// user and options can change what a name resolves to).
pub fn database_key(spec: &ConnectSpec) -> u64 {
    let mut h = FxHasher::default();
    (&spec.host, &spec.port, &spec.user, &spec.dbname, &spec.options).hash(&mut h);
    h.finish()
}

fn statement_key(sql: &str, param_oids: &[u32]) -> u64 {
    let mut h = FxHasher::default();
    sql.hash(&mut h);
    param_oids.hash(&mut h);
    h.finish()
}

/// The codes for a result with these columns (compressed to one code when all agree).
pub fn for_columns(cols: &[Column]) -> Formats {
    let codes: Vec<i16> = cols.iter().map(|c| Decoder::for_type(c.type_()).wants_binary() as i16).collect();
    if codes.iter().all(|&c| c == 1) {
        return all_binary();
    }
    if codes.iter().all(|&c| c == 0) {
        return Arc::from([0i16]);
    }
    Arc::from(codes)
}

/// Whether column `i` was sent in binary under `formats`.
#[inline]
pub fn is_binary(formats: &[i16], i: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        many => many.get(i).is_some_and(|&c| c == 1),
    }
}

/// The remembered formats of `sql`, if its columns were described and every column type
/// is known to the session that runs it (`knows_type`: `Client::knows_type`). Otherwise
/// None, and the caller describes it on that session, which loads the types: met first in
/// the result instead, they make the session read the whole response before the lookup.
pub fn lookup(db: u64, sql: &str, param_oids: &[u32], knows_type: impl Fn(u32) -> bool) -> Option<Formats> {
    let cache = cache().lock();
    let e = cache.get(&db)?.get(&statement_key(sql, param_oids))?;
    (e.sql == sql && *e.param_oids == *param_oids && e.looked_up.iter().all(|&oid| knows_type(oid))).then(|| e.formats.clone())
}

/// Remembers the described columns of `sql`; returns their formats.
pub fn store(db: u64, sql: &str, param_oids: &[u32], cols: &[Column]) -> Formats {
    let formats = for_columns(cols);
    let text_safe = cols.iter().all(|c| Decoder::for_type(c.type_()).same_from_text());
    let looked_up = cols.iter().map(|c| c.type_().oid()).filter(|&oid| tokio_postgres::types::Type::from_oid(oid).is_none()).collect();
    let mut cache = cache().lock();
    let entries = cache.entry(db).or_default();
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
    let entry = Entry { sql: sql.to_owned(), param_oids: param_oids.into(), formats: formats.clone(), text_safe, looked_up };
    entries.insert(statement_key(sql, param_oids), entry);
    formats
}

/// The remembered formats of `sql`, if its columns were described and all of them decode
/// to the same objects from text.
pub fn lookup_text_safe(db: u64, sql: &str, param_oids: &[u32], knows_type: impl Fn(u32) -> bool) -> Option<Formats> {
    let cache = cache().lock();
    let e = cache.get(&db)?.get(&statement_key(sql, param_oids))?;
    (e.text_safe && e.sql == sql && *e.param_oids == *param_oids && e.looked_up.iter().all(|&oid| knows_type(oid)))
        .then(|| e.formats.clone())
}

pub fn forget(db: u64, sql: &str, param_oids: &[u32]) {
    if let Some(entries) = cache().lock().get_mut(&db) {
        entries.remove(&statement_key(sql, param_oids));
    }
}

/// After DDL (a column type, an extension, a type may have changed).
pub fn forget_database(db: u64) {
    cache().lock().remove(&db);
}

/// The server refused binary output for a column's type: its type changed since the
/// Describe (or was never binary-capable): describe again.
pub fn is_binary_refused(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNDEFINED_FUNCTION && db.message().starts_with("no binary output function")
    })
}
