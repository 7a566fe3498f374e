//! Statement fingerprints: one stable hash per query *shape*, whatever its values.
//!
//! The N+1 detector (`crate::nplusone`) groups statements by fingerprint. Two statements
//! share one when they differ only in
//! - values: literals, `%s` / `%(name)s` / `$n` / `?` placeholders;
//! - list lengths: `IN (%s)`, `IN (%s, %s, %s)` and `= ANY(%s)` are one shape, as are
//!   `VALUES (..), (..)` rows and `ARRAY[..]` items that all normalize alike;
//! - whitespace, letter case (of keywords and unquoted or lower-case identifiers) and
//!   comments, sqlcommenter tags included;
//! - generated names: Django's `_django_curs_*` cursor names and savepoint names.
//!
//! Anything else makes a different shape: the select list (`only()`), tables, filtered
//! columns, and `LIMIT` counts (`LIMIT 21` from `.get()` is not `LIMIT 1` from
//! `.first()`); `OFFSET` values are normalized (pages of one loop are one shape).
//!
//! The statement is parsed with `sqlparser` (PostgreSQL dialect), normalized on the AST,
//! printed, and the printed text is canonicalized token by token. When parsing fails the
//! same token canonicalizer runs on the original text with list/name rules of its own;
//! when even tokenizing fails a character-level normalizer does. Nothing here panics
//! into the caller (`fingerprint` catches unwinding) and nothing needs Python.
//!
//! Besides the hash, the parse yields what the detector maps to Django relations: the
//! statement kind, its tables (aliases resolved), the columns compared with values, and
//! whether the select list is a lone `COUNT(...)`.

mod normalize;

use parking_lot::Mutex;
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectName, Query, SelectItem, SetExpr, Statement,
    TableFactor, UnaryOperator, Value, Visit, VisitMut, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::borrow::Cow;
use std::collections::HashMap;
use super::classify::{self, StatementKind};
use crate::fxhash::FxMap;
use normalize::{canonical, Normalizer};
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

/// A column compared with a value: `t.col = $1` (`many` false) or `t.col IN (...)` /
/// `t.col = ANY($1)` (`many` true). `table` is the real table name when the column was
/// qualified (aliases such as Django's `U0` / `T3` are resolved), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub table: Option<String>,
    pub column: String,
    pub many: bool,
}

/// How the normalized text was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Parsed and normalized on the AST.
    Parsed,
    /// The parser failed: token-level normalization.
    Tokens,
    /// Even the tokenizer failed: character-level normalization.
    Chars,
}

#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// FNV-1a (64-bit) of `normalized`: stable across runs, versions and machines.
    pub hash: u64,
    pub normalized: String,
    pub method: Method,
    pub kind: StatementKind,
    /// Tables read or written, in order of appearance, without duplicates.
    pub tables: Vec<String>,
    pub filters: Vec<Filter>,
    /// The (top-level) select list is a single `COUNT(...)`.
    pub count_only: bool,
}

impl Fingerprint {
    pub fn hex(&self) -> String {
        format!("{:016x}", self.hash)
    }

    /// A statement that only reads (the detector groups these).
    pub fn is_read(&self) -> bool {
        self.kind == StatementKind::Select
    }

    /// INSERT / UPDATE / DELETE: grouped like reads (a `save()` or `delete()` per row is
    /// a loop too).
    pub fn is_write(&self) -> bool {
        matches!(self.kind, StatementKind::Insert | StatementKind::Update | StatementKind::Delete)
    }
}

// ---------------------------------------------------------------------------- hashing

/// FNV-1a, 64-bit: tiny, stable, good enough for fingerprints of normalized text.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}


// ---------------------------------------------------------------------------- cache

const CACHE_CAP: usize = 8192;

fn cache() -> &'static Mutex<FxMap<Box<str>, Arc<Fingerprint>>> {
    static CACHE: OnceLock<Mutex<FxMap<Box<str>, Arc<Fingerprint>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(FxMap::default()))
}

/// The fingerprint of SQL as the driver sends it (`$n` placeholders; `%` is literal),
/// parsed once per distinct string. The cache is bounded: it is emptied when full.
pub fn cached(sql: &str) -> Arc<Fingerprint> {
    if let Some(fp) = cache().lock().get(sql) {
        return fp.clone();
    }
    let fp = Arc::new(fingerprint(sql));
    let mut c = cache().lock();
    if c.len() >= CACHE_CAP {
        c.clear();
    }
    c.insert(sql.into(), fp.clone());
    fp
}

/// `%s` / `%(name)s` placeholders (Django's paramstyle) → `$n`, `%%` → `%`. Text that is
/// not valid pyformat is returned unchanged.
pub fn from_pyformat(sql: &str) -> Cow<'_, str> {
    if !sql.contains('%') {
        return Cow::Borrowed(sql);
    }
    match crate::sql::placeholders::scan(sql, true) {
        Ok(t) => {
            let numbers: Vec<usize> = (1..=t.slot_count().max(1)).collect();
            Cow::Owned(t.render(&numbers))
        }
        Err(_) => Cow::Borrowed(sql),
    }
}

// ---------------------------------------------------------------------------- entry

/// The fingerprint of `sql` (driver form: `$n` placeholders). Never panics.
pub fn fingerprint(sql: &str) -> Fingerprint {
    match std::panic::catch_unwind(|| compute(sql)) {
        Ok(fp) => fp,
        Err(_) => by_chars(sql),
    }
}

fn compute(sql: &str) -> Fingerprint {
    let dialect = PostgreSqlDialect {};
    let parsed = Parser::new(&dialect).with_recursion_limit(64).try_with_sql(sql).and_then(|mut p| p.parse_statements());
    match parsed {
        Ok(mut stmts) if !stmts.is_empty() => {
            let mut analysis = Analysis::default();
            for s in &stmts {
                let _ = s.visit(&mut analysis);
            }
            let kind = classify::kind_of_statement(&stmts[0]);
            let count_only = match &stmts[0] {
                Statement::Query(q) => count_only(q),
                _ => false,
            };
            let mut norm = Normalizer;
            for s in stmts.iter_mut() {
                let _ = s.visit(&mut norm);
            }
            let printed = stmts.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(";\n");
            match canonical(&printed, false) {
                Some(normalized) => Fingerprint {
                    hash: fnv1a(normalized.as_bytes()),
                    normalized,
                    method: Method::Parsed,
                    kind,
                    tables: analysis.tables(),
                    filters: analysis.filters(),
                    count_only,
                },
                None => by_tokens(sql),
            }
        }
        _ => by_tokens(sql),
    }
}

fn by_tokens(sql: &str) -> Fingerprint {
    match canonical(sql, true) {
        Some(normalized) => {
            let kind = classify::kind_from_text(&normalized);
            Fingerprint {
                hash: fnv1a(normalized.as_bytes()),
                normalized,
                method: Method::Tokens,
                kind,
                tables: Vec::new(),
                filters: Vec::new(),
                count_only: false,
            }
        }
        None => by_chars(sql),
    }
}

// ---------------------------------------------------------------------------- analysis

#[derive(Default)]
struct Analysis {
    tables: Vec<String>,
    aliases: HashMap<String, String>,
    /// (qualifier as written, column, many)
    raw_filters: Vec<(Option<String>, String, bool)>,
}

fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

fn object_last(name: &ObjectName) -> Option<String> {
    name.0.last().and_then(|p| p.as_ident()).map(ident_name)
}

/// A column reference: `col` or `qualifier.col` (the last two parts of a compound name).
fn column_of(e: &Expr) -> Option<(Option<String>, String)> {
    match e {
        Expr::Identifier(i) => Some((None, ident_name(i))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let n = parts.len();
            Some((Some(ident_name(&parts[n - 2])), ident_name(&parts[n - 1])))
        }
        Expr::Nested(inner) => column_of(inner),
        Expr::Cast { expr, .. } => column_of(expr),
        _ => None,
    }
}

/// A literal or a placeholder, possibly cast, parenthesized or negated.
fn is_value(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => !matches!(v.value, Value::Null),
        Expr::TypedString { .. } => true,
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_value(expr),
        Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => is_value(expr),
        Expr::Array(a) => !a.elem.is_empty() && a.elem.iter().all(is_value),
        _ => false,
    }
}

impl Visitor for Analysis {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let Some(t) = object_last(relation) {
            if !self.tables.contains(&t) {
                self.tables.push(t);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias: Some(alias), .. } = tf {
            if let Some(t) = object_last(name) {
                self.aliases.insert(ident_name(&alias.name), t);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
                if is_value(right) {
                    if let Some((q, c)) = column_of(left) {
                        self.raw_filters.push((q, c, false));
                    }
                } else if is_value(left) {
                    if let Some((q, c)) = column_of(right) {
                        self.raw_filters.push((q, c, false));
                    }
                }
            }
            Expr::InList { expr, list, negated: false } if !list.is_empty() && list.iter().all(is_value) => {
                if let Some((q, c)) = column_of(expr) {
                    self.raw_filters.push((q, c, true));
                }
            }
            Expr::AnyOp { left, compare_op: BinaryOperator::Eq, right, .. } if is_value(right) => {
                if let Some((q, c)) = column_of(left) {
                    self.raw_filters.push((q, c, true));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl Analysis {
    fn tables(&self) -> Vec<String> {
        self.tables.clone()
    }

    fn filters(&self) -> Vec<Filter> {
        let mut out: Vec<Filter> = Vec::new();
        for (q, c, many) in &self.raw_filters {
            let table = q.as_ref().map(|q| self.aliases.get(q).cloned().unwrap_or_else(|| q.clone()));
            let f = Filter { table, column: c.clone(), many: *many };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }
}

fn count_only(q: &Query) -> bool {
    let SetExpr::Select(select) = q.body.as_ref() else { return false };
    if select.projection.len() != 1 {
        return false;
    }
    let expr = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return false,
    };
    match expr {
        Expr::Function(f) => object_last(&f.name).is_some_and(|n| n.eq_ignore_ascii_case("count")),
        _ => false,
    }
}

// ---------------------------------------------------------------------------- last resort

/// Character-level normalization for text the tokenizer rejects (unterminated quotes...):
/// lower-case, comments dropped, quoted strings and numbers → `?`, whitespace collapsed.
fn by_chars(sql: &str) -> Fingerprint {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut last_space = true;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
                out.push('?');
                last_space = false;
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '$' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
                out.push('?');
                last_space = false;
            }
            d if d.is_ascii_digit() && !out.chars().last().is_some_and(|p| p.is_alphanumeric() || p == '_') => {
                while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    chars.next();
                }
                out.push('?');
                last_space = false;
            }
            w if w.is_whitespace() => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            other => {
                out.extend(other.to_lowercase());
                last_space = false;
            }
        }
    }
    let normalized = out.trim().to_string();
    let kind = classify::kind_from_text(&normalized);
    Fingerprint {
        hash: fnv1a(normalized.as_bytes()),
        normalized,
        method: Method::Chars,
        kind,
        tables: Vec::new(),
        filters: Vec::new(),
        count_only: false,
    }
}

#[cfg(test)]
mod tests;
