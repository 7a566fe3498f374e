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

use parking_lot::Mutex;
use sqlparser::ast::{
    BinaryOperator, CastKind, CloseCursor, Expr, Ident, LimitClause, ObjectName, Query, SelectItem, SetExpr, Statement,
    TableFactor, UnaryOperator, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

/// What a statement does, as far as the detector cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    /// BEGIN / COMMIT / ROLLBACK.
    Transaction,
    /// SAVEPOINT / RELEASE / ROLLBACK TO.
    Savepoint,
    /// DECLARE / FETCH / CLOSE / MOVE.
    Cursor,
    Ddl,
    /// SET / SHOW / EXPLAIN / LOCK / TRUNCATE / COPY / ...
    Utility,
    Other,
}

impl StatementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Transaction => "transaction",
            StatementKind::Savepoint => "savepoint",
            StatementKind::Cursor => "cursor",
            StatementKind::Ddl => "ddl",
            StatementKind::Utility => "utility",
            StatementKind::Other => "other",
        }
    }
}

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

/// The Fx hash (rustc's): fast, not DoS-resistant; for in-process maps keyed by SQL text
/// and by already-hashed values.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxMap<K, V> = HashMap<K, V, FxBuild>;

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
            let kind = statement_kind(&stmts[0]);
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
            let kind = kind_from_text(&normalized);
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

fn statement_kind(s: &Statement) -> StatementKind {
    match s {
        Statement::Query(_) => StatementKind::Select,
        Statement::Insert(_) => StatementKind::Insert,
        Statement::Update { .. } => StatementKind::Update,
        Statement::Delete(_) => StatementKind::Delete,
        Statement::StartTransaction { .. } | Statement::Commit { .. } => StatementKind::Transaction,
        Statement::Rollback { savepoint: None, .. } => StatementKind::Transaction,
        Statement::Rollback { .. } | Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
            StatementKind::Savepoint
        }
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => StatementKind::Cursor,
        Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateExtension { .. }
        | Statement::CreateSchema { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateType { .. }
        | Statement::CreateDatabase { .. }
        | Statement::AlterTable { .. }
        | Statement::AlterIndex { .. }
        | Statement::AlterView { .. }
        | Statement::Drop { .. }
        | Statement::DropFunction { .. }
        | Statement::DropExtension { .. }
        | Statement::Comment { .. } => StatementKind::Ddl,
        Statement::Set(_)
        | Statement::ShowVariable { .. }
        | Statement::Explain { .. }
        | Statement::Truncate { .. }
        | Statement::Copy { .. }
        | Statement::LISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Analyze { .. }
        | Statement::Prepare { .. }
        | Statement::Execute { .. }
        | Statement::Deallocate { .. } => StatementKind::Utility,
        _ => StatementKind::Other,
    }
}

/// For texts that did not parse: the kind from the leading keyword(s).
fn kind_from_text(normalized: &str) -> StatementKind {
    let mut words = normalized.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    match first {
        "select" | "with" | "values" | "table" => StatementKind::Select,
        "insert" => StatementKind::Insert,
        "update" => StatementKind::Update,
        "delete" => StatementKind::Delete,
        "begin" | "start" | "commit" | "end" | "abort" => StatementKind::Transaction,
        "rollback" if second == "to" => StatementKind::Savepoint,
        "rollback" => StatementKind::Transaction,
        "savepoint" | "release" => StatementKind::Savepoint,
        "declare" | "fetch" | "close" | "move" => StatementKind::Cursor,
        "create" | "alter" | "drop" | "comment" => StatementKind::Ddl,
        "set" | "show" | "explain" | "lock" | "truncate" | "copy" | "listen" | "notify" | "unlisten" | "vacuum"
        | "analyze" | "reset" | "discard" | "prepare" | "execute" | "deallocate" => StatementKind::Utility,
        _ => StatementKind::Other,
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

// ---------------------------------------------------------------------------- AST normalization

struct Normalizer;

/// The placeholder every value becomes on the AST (printed, then read back as `?`).
const PH: &str = "$0";

fn placeholder() -> Expr {
    Expr::value(Value::Placeholder(PH.into()))
}

fn is_placeholder(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if is_placeholder_value(&v.value))
}

/// After children are normalized: a value that stands for "some list of values".
fn is_list_value(e: &Expr) -> bool {
    match e {
        Expr::Value(_) => is_placeholder(e),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_list_value(expr),
        Expr::Array(a) => a.elem.iter().all(is_placeholder),
        _ => false,
    }
}

fn dedup_all_equal(list: &mut Vec<Expr>) {
    if list.len() > 1 && list.iter().all(|e| *e == list[0]) {
        list.truncate(1);
    }
}

fn cursor_name(name: &mut Ident) {
    *name = Ident::new("_cursor_");
}

impl VisitorMut for Normalizer {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &mut Statement) -> ControlFlow<()> {
        match s {
            Statement::Savepoint { name } | Statement::ReleaseSavepoint { name } => *name = Ident::new("_savepoint_"),
            Statement::Rollback { savepoint: Some(name), .. } => *name = Ident::new("_savepoint_"),
            Statement::Declare { stmts } => {
                for d in stmts {
                    for n in &mut d.names {
                        cursor_name(n);
                    }
                }
            }
            Statement::Fetch { name, .. } => cursor_name(name),
            Statement::Close { cursor: CloseCursor::Specific { name } } => cursor_name(name),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        // LIMIT counts are part of the shape: shield them from literal normalization.
        if let Some(LimitClause::LimitOffset { limit: Some(e), .. }) = &mut q.limit_clause {
            if let Expr::Value(v) = e {
                if let Value::Number(n, _) = &v.value {
                    *e = Expr::Identifier(Ident::new(n.clone()));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Values(values) = q.body.as_mut() {
            if values.rows.len() > 1 && values.rows.iter().all(|r| *r == values.rows[0]) {
                values.rows.truncate(1);
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // `DATE '2020-01-01'` is `$1::date` with a value.
        if let Expr::TypedString { data_type, .. } = e {
            *e = Expr::Cast { kind: CastKind::DoubleColon, expr: Box::new(placeholder()), data_type: data_type.clone(), format: None };
            return ControlFlow::Continue(());
        }
        let replace = match e {
            Expr::Value(v) => !matches!(v.value, Value::Null) && !is_placeholder_value(&v.value),
            // `ARRAY[$1, $2]` is one list value, as `$1` bound to a list is.
            Expr::Array(a) => !a.elem.is_empty() && a.elem.iter().all(is_placeholder),
            Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => is_placeholder(expr),
            Expr::InList { list, .. } => {
                dedup_all_equal(list);
                false
            }
            Expr::Tuple(items) => {
                // Django's multi-column IN: ((a, b) IN ((?, ?), (?, ?)))
                let _ = items;
                false
            }
            _ => false,
        };
        if replace {
            *e = placeholder();
            return ControlFlow::Continue(());
        }
        // `col = ANY(?)` is `col IN (?)`; `col <> ALL(?)` is `col NOT IN (?)`.
        let rewrite = match e {
            Expr::AnyOp { left, compare_op: BinaryOperator::Eq, right, .. } if is_list_value(right) => {
                Some((left.clone(), false))
            }
            Expr::AllOp { left, compare_op: BinaryOperator::NotEq, right } if is_list_value(right) => {
                Some((left.clone(), true))
            }
            _ => None,
        };
        if let Some((left, negated)) = rewrite {
            *e = Expr::InList { expr: left, list: vec![placeholder()], negated };
        }
        ControlFlow::Continue(())
    }
}

fn is_placeholder_value(v: &Value) -> bool {
    matches!(v, Value::Placeholder(p) if p == PH)
}

// ---------------------------------------------------------------------------- token canonicalization

/// Canonical text from tokens: comments and whitespace dropped, words lower-cased (quoted
/// identifiers too, unless their quotes make them case-sensitive), values → `?` (except
/// `LIMIT n`), Django cursor names → `_cursor_`. With `lists`, also the rules the AST
/// path applies structurally: value lists in `IN (...)`, `= ANY(...)`, `ARRAY[...]` and
/// repeated `VALUES` rows collapse, and savepoint names are dropped.
fn canonical(sql: &str, lists: bool) -> Option<String> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for tok in tokens {
        let text = match tok {
            Token::Whitespace(_) => continue,
            Token::Word(w) => {
                let v = &w.value;
                let case_sensitive = w.quote_style.is_some() && v.chars().any(|c| c.is_uppercase());
                let lowered = if case_sensitive { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_lowercase() };
                if lowered.starts_with("_django_curs_") {
                    "_cursor_".to_string()
                } else if w.quote_style.is_some() && !case_sensitive && needs_quotes(&lowered) {
                    format!("\"{lowered}\"")
                } else {
                    lowered
                }
            }
            Token::Number(n, _) => {
                if out.last().is_some_and(|p| p == "limit") {
                    n
                } else {
                    "?".into()
                }
            }
            Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::Placeholder(_) => "?".into(),
            Token::EOF => continue,
            other => other.to_string(),
        };
        if lists {
            push_collapsing(&mut out, text);
        } else {
            out.push(text);
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(join(&out))
}

/// A lower-case word that would not survive unquoted (spaces, symbols, leading digit).
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars().next().is_some_and(|c| c.is_ascii_digit())
        || !s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// Token-path list rules, applied as each token arrives.
fn push_collapsing(out: &mut Vec<String>, text: String) {
    let n = out.len();
    // Savepoint names: SAVEPOINT x / RELEASE [SAVEPOINT] x / ROLLBACK TO [SAVEPOINT] x.
    if n >= 1 {
        let prev = out[n - 1].as_str();
        let prev2 = if n >= 2 { out[n - 2].as_str() } else { "" };
        let after_savepoint_kw = (prev == "savepoint")
            || (prev == "release" && text != "savepoint")
            || (prev == "to" && prev2 == "rollback" && text != "savepoint");
        if after_savepoint_kw && text != "savepoint" {
            out.push("_savepoint_".into());
            return;
        }
    }
    if text == ")" || text == "]" {
        // `( ? , ? , ... )` after IN / ANY / VALUES-row / ARRAY: keep one `?`.
        let close = text.as_str();
        let open = if close == ")" { "(" } else { "[" };
        let mut i = n;
        let mut only_values = true;
        while i > 0 {
            let t = out[i - 1].as_str();
            if t == open {
                break;
            }
            if t != "?" && t != "," {
                only_values = false;
                break;
            }
            i -= 1;
        }
        if only_values && i > 0 && n - i > 1 {
            out.truncate(i);
            out.push("?".into());
        }
        out.push(text);
        // `= ANY ( ? )` → `IN ( ? )`
        let m = out.len();
        if m >= 5 && out[m - 1] == ")" && out[m - 2] == "?" && out[m - 3] == "(" && out[m - 4] == "any" && out[m - 5] == "=" {
            out.truncate(m - 5);
            out.extend(["in", "(", "?", ")"].map(String::from));
        }
        // VALUES (?), (?) → VALUES (?)
        let m = out.len();
        if m >= 7 && out[m - 3..] == ["(", "?", ")"] && out[m - 4] == "," && out[m - 7..m - 4] == ["(", "?", ")"] {
            out.truncate(m - 4);
        }
        return;
    }
    out.push(text);
}

/// Joins tokens with single spaces, none around `.` and `::` or inside brackets.
fn join(tokens: &[String]) -> String {
    let mut s = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum());
    let mut prev: &str = "";
    for t in tokens {
        let tight = prev.is_empty()
            || matches!(prev, "." | "(" | "[" | "::")
            || matches!(t.as_str(), "." | "," | ")" | "]" | "::" | "[" | ";");
        if !tight {
            s.push(' ');
        }
        s.push_str(t);
        prev = t;
    }
    s
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
    let kind = kind_from_text(&normalized);
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
mod tests {
    use super::*;

    fn fp(sql: &str) -> Fingerprint {
        fingerprint(&from_pyformat(sql))
    }

    fn same(a: &str, b: &str) {
        let (x, y) = (fp(a), fp(b));
        assert_eq!(x.normalized, y.normalized, "\n  {a}\n  {b}");
        assert_eq!(x.hash, y.hash);
    }

    fn differ(a: &str, b: &str) {
        let (x, y) = (fp(a), fp(b));
        assert_ne!(x.hash, y.hash, "\n  {a}\n  {b}\n  both: {}", x.normalized);
    }

    #[test]
    fn values_and_placeholders() {
        let base = r#"SELECT "shop_author"."id", "shop_author"."name" FROM "shop_author" WHERE "shop_author"."id" = %s LIMIT 21"#;
        same(base, r#"SELECT "shop_author"."id", "shop_author"."name" FROM "shop_author" WHERE "shop_author"."id" = 42 LIMIT 21"#);
        same(base, r#"SELECT "shop_author"."id", "shop_author"."name" FROM "shop_author" WHERE "shop_author"."id" = $1 LIMIT 21"#);
        same(base, "select shop_author.id,\n  shop_author.NAME from SHOP_AUTHOR -- x\n where shop_author.id = '7' limit 21");
        same(base, &format!("{base} /*controller='book',framework='django'*/"));
        same(base, &format!("/* app */ {base}"));
    }

    #[test]
    fn lists() {
        let one = r#"SELECT "t"."id" FROM "t" WHERE "t"."a_id" IN (%s)"#;
        same(one, r#"SELECT "t"."id" FROM "t" WHERE "t"."a_id" IN (%s, %s, %s)"#);
        same(one, r#"SELECT "t"."id" FROM "t" WHERE "t"."a_id" = ANY(%s)"#);
        same(one, r#"SELECT "t"."id" FROM "t" WHERE "t"."a_id" IN (1, 2, 3)"#);
        same(one, r#"SELECT "t"."id" FROM "t" WHERE "t"."a_id" = ANY(ARRAY[1, 2])"#);
    }

    #[test]
    fn shapes_that_differ() {
        let a = r#"SELECT "b"."id", "b"."title" FROM "b" WHERE "b"."id" = %s LIMIT 21"#;
        differ(a, r#"SELECT "b"."id" FROM "b" WHERE "b"."id" = %s LIMIT 21"#);
        differ(a, r#"SELECT "b"."id", "b"."title" FROM "c" WHERE "b"."id" = %s LIMIT 21"#);
        differ(a, r#"SELECT "b"."id", "b"."title" FROM "b" WHERE "b"."isbn" = %s LIMIT 21"#);
        differ(a, r#"SELECT "b"."id", "b"."title" FROM "b" WHERE "b"."id" = %s LIMIT 1"#);
    }

    #[test]
    fn names() {
        same(r#"SAVEPOINT "s140_x1""#, r#"SAVEPOINT "s977_x12""#);
        same(r#"RELEASE SAVEPOINT "s140_x1""#, r#"release savepoint s2"#);
        same(r#"ROLLBACK TO SAVEPOINT "s140_x1""#, r#"ROLLBACK TO SAVEPOINT "s1_x9""#);
        same(
            r#"DECLARE "_django_curs_140_sync_1" NO SCROLL CURSOR WITH HOLD FOR SELECT "t"."id" FROM "t""#,
            r#"DECLARE "_django_curs_9_async_7" NO SCROLL CURSOR WITH HOLD FOR SELECT "t"."id" FROM "t""#,
        );
        same(r#"FETCH FORWARD 100 FROM "_django_curs_1""#, r#"FETCH FORWARD 100 FROM "_django_curs_2""#);
        same(r#"CLOSE "_django_curs_1""#, r#"CLOSE "_django_curs_2""#);
    }

    #[test]
    fn fallback_never_fails() {
        for s in ["SELECT 'unterminated", "", "   ", "???", "SET CONSTRAINTS ALL IMMEDIATE", "SELECT $$x", "\0"] {
            let f = fingerprint(s);
            assert_eq!(f.hash, fnv1a(f.normalized.as_bytes()));
        }
        same("SET CONSTRAINTS ALL IMMEDIATE", "set   constraints all immediate");
        assert_eq!(fingerprint("SET CONSTRAINTS ALL IMMEDIATE").method, Method::Tokens);
        same("SELECT x FROM t WHERE y IN ($1, $2) AND SYNTAX ERROR (", "select x from t where y in ($1) and syntax error (");
    }

    #[test]
    fn analysis() {
        let f = fp(r#"SELECT "shop_label"."id" FROM "shop_label" INNER JOIN "shop_book_labels" ON ("shop_label"."id" = "shop_book_labels"."label_id") WHERE "shop_book_labels"."book_id" = %s"#);
        assert_eq!(f.kind, StatementKind::Select);
        assert_eq!(f.tables, vec!["shop_label", "shop_book_labels"]);
        assert_eq!(f.filters, vec![Filter { table: Some("shop_book_labels".into()), column: "book_id".into(), many: false }]);
        let f = fp(r#"SELECT COUNT(*) AS "__count" FROM "shop_review" WHERE "shop_review"."book_id" = %s"#);
        assert!(f.count_only);
        let f = fp(r#"SELECT U0."id" FROM "shop_book" U0 WHERE U0."author_id" IN (%s, %s)"#);
        assert_eq!(f.filters, vec![Filter { table: Some("shop_book".into()), column: "author_id".into(), many: true }]);
    }

    /// The golden corpus (src/sql/testdata): every statement shape Django emits (generated
    /// by tests/nplusone/corpus.py) plus hand-written variants. Checks that entries of one
    /// class share a fingerprint, that classes of one file never do, and that every entry's
    /// fingerprint, method and normalized text match `corpus.golden.jsonl`
    /// (`BLESS=1 cargo test ... golden_corpus` rewrites it).
    #[test]
    fn golden_corpus() {
        use std::collections::{BTreeMap, HashMap};
        use std::path::Path;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sql/testdata");
        let mut computed: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        let mut total = 0;
        for file in ["corpus_manual.jsonl", "corpus_django.jsonl"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let mut by_class: HashMap<String, (u64, String)> = HashMap::new();
            let mut by_hash: HashMap<u64, String> = HashMap::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let Some(sql) = v.get("sql").and_then(|s| s.as_str()) else { continue };
                let id = v["id"].as_str().unwrap().to_string();
                let class = v["class"].as_str().unwrap().to_string();
                let f = fp(sql);
                total += 1;
                if let Some((h, first)) = by_class.get(&class) {
                    assert_eq!(*h, f.hash, "class {class}: {id} differs from {first}\n  {}", f.normalized);
                } else {
                    by_class.insert(class.clone(), (f.hash, id.clone()));
                }
                if let Some(other) = by_hash.get(&f.hash) {
                    assert_eq!(other, &class, "{id} ({class}) has the fingerprint of class {other}: {}", f.normalized);
                } else {
                    by_hash.insert(f.hash, class.clone());
                }
                let method = match f.method {
                    Method::Parsed => "parsed",
                    Method::Tokens => "tokens",
                    Method::Chars => "chars",
                };
                computed.insert(
                    id.clone(),
                    serde_json::json!({"id": id, "fingerprint": f.hex(), "method": method, "kind": f.kind.as_str(), "normalized": f.normalized}),
                );
            }
        }
        assert!(total >= 200, "the corpus has {total} statements");
        let golden_path = dir.join("corpus.golden.jsonl");
        if std::env::var_os("BLESS").is_some() {
            let out: String = computed.values().map(|v| format!("{v}\n")).collect();
            std::fs::write(&golden_path, out).unwrap();
            return;
        }
        let golden = std::fs::read_to_string(&golden_path).expect("corpus.golden.jsonl (BLESS=1 to create)");
        let mut expected: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for line in golden.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            expected.insert(v["id"].as_str().unwrap().to_string(), v);
        }
        for (id, v) in &computed {
            assert_eq!(expected.get(id), Some(v), "golden mismatch for {id}");
        }
        assert_eq!(expected.len(), computed.len(), "golden has entries the corpus lacks");
    }
}
