//! A query plus its Python parameters → the SQL text and typed parameters that are sent.
//! Values are never spliced into the executed SQL; `mogrify` exists for display only.

use crate::errors;
use crate::sql::classify::{effects, ClientSide, Effects};
use crate::sql::colnames::{self, BareItem};
use crate::sql::literal::quote_identifier;
use crate::sql::untyped;
use crate::fxhash::FxMap;
use crate::sql::placeholders::{self, scan, Part, Shape, Style, Template};
use crate::types::encode::{sequence_items, Encoder, Format, Param};
use bytes::BytesMut;
use postgres_types::{to_sql_checked, IsNull, Kind, ToSql, Type};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMapping, PyString};
use std::sync::{Arc, OnceLock};

pub struct BoundQuery {
    pub sql: String,
    pub params: Vec<Param>,
    pub shape: Shape,
    pub effects: Effects,
    /// What the simple protocol needs to render `sql` with literals instead of `$n`, for a
    /// statement with parameters that `effects.client_side` allows.
    pub inline: Option<Inline>,
    /// An untyped value stands where the server is not known to infer its type
    /// (`untyped::inferred_slots`): inside a transaction its first run is guarded.
    pub untyped_unsure: bool,
}

pub struct Inline {
    pub template: Arc<Template>,
    /// The 1-based parameter number of each slot.
    pub numbers: Vec<usize>,
}

impl BoundQuery {
    /// The statement with its parameters as literals, when every one has a literal form.
    pub fn client_side_sql(&self) -> Option<String> {
        match &self.inline {
            Some(i) => crate::types::encode::inline::render(&i.template, &i.numbers, &self.params),
            None if self.params.is_empty() => Some(self.sql.clone()),
            None => None,
        }
    }
}

/// Accepts str, bytes, or a psycopg `sql.Composable`.
pub fn query_text(py: Python<'_>, query: &Bound<'_, PyAny>) -> PyResult<String> {
    // The protocol carries SQL as a C string: refused here, before the session sees it.
    let no_nul = |text: String| {
        if text.contains('\0') {
            return Err(errors::programming(py, "the query contains a NUL (0x00) byte, which PostgreSQL cannot receive"));
        }
        Ok(text)
    };
    if let Ok(s) = query.downcast::<PyString>() {
        return no_nul(s.to_cow()?.into_owned());
    }
    if let Ok(b) = query.downcast::<PyBytes>() {
        let text = String::from_utf8(b.as_bytes().to_vec()).map_err(|_| errors::programming(py, "query bytes are not valid UTF-8"))?;
        return no_nul(text);
    }
    if query.hasattr("as_string")? {
        return no_nul(query.call_method1("as_string", (py.None(),))?.extract()?);
    }
    let type_name = query.get_type().qualname()?.to_string();
    Err(errors::programming(py, format!("query must be str, bytes or sql.Composable, not {type_name}")))
}

fn scan_or_raise(py: Python<'_>, query: &str, with_params: bool) -> PyResult<Template> {
    scan(query, with_params).map_err(|e| errors::programming(py, e.to_string()))
}

/// Statements remembered per thread (Django sends the same SQL text over and over: the
/// scan and the classification are most of binding's cost).
const SCANNED_ENTRIES: usize = 512;
/// Longer statements (bulk INSERTs with thousands of placeholders) are scanned every time.
const SCANNED_MAX_LEN: usize = 16 * 1024;

/// A statement's scan, its effects, and (computed on first need, kept with the scan) which
/// of its slots an untyped value cannot stand in.
struct ScanEntry {
    template: Arc<Template>,
    effects: Effects,
    ambiguous: OnceLock<Box<[bool]>>,
    /// Which slots the server surely infers an untyped value's type in.
    inferred: OnceLock<Box<[bool]>>,
    /// A slot where the grammar takes only a constant (`untyped::constant_slot`).
    constant: OnceLock<bool>,
    /// Slots that are a whole select-list item without an alias (`colnames::bare_items`).
    bare: OnceLock<Box<[BareItem]>>,
}

type Scanned = Arc<ScanEntry>;

thread_local! {
    /// Index 0: without parameters (text verbatim), 1: with parameters.
    static SCANNED: std::cell::RefCell<[FxMap<String, Scanned>; 2]> = Default::default();
}

/// `scan` and `effects`, cached by SQL text.
fn scanned(py: Python<'_>, query: &str, with_params: bool) -> PyResult<Scanned> {
    let slot = with_params as usize;
    if query.len() <= SCANNED_MAX_LEN {
        if let Some(hit) = SCANNED.with(|c| c.borrow()[slot].get(query).cloned()) {
            return Ok(hit);
        }
    }
    let template = Arc::new(scan_or_raise(py, query, with_params)?);
    let effects = effects(&template.shape, query);
    let entry = Arc::new(ScanEntry { template, effects, ambiguous: OnceLock::new(), inferred: OnceLock::new(), constant: OnceLock::new(), bare: OnceLock::new() });
    if query.len() <= SCANNED_MAX_LEN {
        SCANNED.with(|c| {
            let mut c = c.borrow_mut();
            if c[slot].len() >= SCANNED_ENTRIES {
                c[slot].clear();
            }
            c[slot].insert(query.to_owned(), entry.clone());
        });
    }
    Ok(entry)
}

/// The parameter values in slot order (positional: as given; named: by first use).
fn slot_values<'py>(py: Python<'py>, template: &Template, params: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    match &template.style {
        Style::Named(names) => {
            let mapping = params
                .downcast::<PyMapping>()
                .map_err(|_| errors::programming(py, "the query uses %(name)s placeholders: parameters must be a mapping"))?;
            names
                .iter()
                .map(|n| {
                    mapping.get_item(n).map_err(|_| errors::programming(py, format!("query parameter missing: {n}")))
                })
                .collect()
        }
        style => {
            if params.downcast::<PyMapping>().is_ok() && !params.is_instance_of::<pyo3::types::PyList>() && !params.is_instance_of::<pyo3::types::PyTuple>() {
                if matches!(style, Style::NoPlaceholders) {
                    return Ok(Vec::new());
                }
                return Err(errors::programming(py, "the query uses %s placeholders: parameters must be a sequence, not a mapping"));
            }
            let items = sequence_items(params)?;
            let expected = template.slot_count();
            if items.len() != expected {
                return Err(errors::programming(
                    py,
                    format!("the query has {expected} placeholders but {} parameters were passed", items.len()),
                ));
            }
            Ok(items)
        }
    }
}

/// A process-wide set of what was learned about statement texts; bounded: it forgets
/// everything when full. `any` spares the lock while nothing was ever learned.
struct Learned<T> {
    set: std::sync::Mutex<Option<std::collections::HashSet<T>>>,
    any: std::sync::atomic::AtomicBool,
    at_most: usize,
}

impl<T: std::hash::Hash + Eq> Learned<T> {
    const fn new(at_most: usize) -> Self {
        Learned { set: std::sync::Mutex::new(None), any: std::sync::atomic::AtomicBool::new(false), at_most }
    }

    fn insert(&self, value: T) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        let set = set.get_or_insert_with(Default::default);
        if set.len() >= self.at_most {
            set.clear();
        }
        set.insert(value);
        self.any.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn contains<Q: std::hash::Hash + Eq + ?Sized>(&self, value: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
    {
        self.any.load(std::sync::atomic::Ordering::Relaxed)
            && self.set.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|s| s.contains(value))
    }

    fn clear(&self) {
        if let Some(set) = self.set.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            set.clear();
        }
    }
}

/// Statement texts the server could not type with untyped parameters bound ("could not
/// determine data type of parameter", in a context `ambiguous_slots` does not know): they go
/// with client-side literals from then on, in transactions too.
static LEARNED_LITERAL: Learned<String> = Learned::new(1024);

/// Remembers that `query` must be rendered with literals when it carries untyped values.
pub fn learn_literals(query: &str) {
    LEARNED_LITERAL.insert(query.to_owned());
}

fn learned_literals(query: &str) -> bool {
    LEARNED_LITERAL.contains(query)
}

/// After a statement with untyped values failed outside a transaction: whether it was the
/// server failing to type one ("could not determine data type of parameter $n", raised at
/// parse analysis, so nothing ran). Then its text is learned: bind it again to send literals.
pub fn learn_literals_from(py: Python<'_>, err: &PyErr, query: &str) -> bool {
    let indeterminate = errors::sqlstate(py, err).as_deref() == Some("42P18");
    if indeterminate {
        learn_literals(query);
    }
    indeterminate
}

/// Statements (by database, text and parameter types) seen to parse with their untyped
/// values bound: inside a transaction they run without the savepoint that guards a first
/// run (`session::run`). Forgotten on a schema change.
static UNTYPED_PARSED: Learned<u64> = Learned::new(16 * 1024);

/// The key `untyped_parsed` and `untyped_parse_seen` take.
pub fn untyped_parse_key(database: u64, sql: &str, oids: &[u32]) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash: two texts sharing a key would skip the guard.
    let mut h = std::hash::DefaultHasher::new();
    (database, sql, oids).hash(&mut h);
    h.finish()
}

pub fn untyped_parsed(key: u64) -> bool {
    UNTYPED_PARSED.contains(&key)
}

pub fn untyped_parse_seen(key: u64) {
    UNTYPED_PARSED.insert(key);
}

/// A schema change may change how a statement's values are typed.
pub fn forget_untyped_parsed() {
    UNTYPED_PARSED.clear();
}

/// Up to this many values, shared `$n` are found by comparing with those already encoded.
const SCAN_SHARED_UP_TO: usize = 16;

/// Bind's parameter count is an int16 on the wire.
const MAX_PARAMS: usize = u16::MAX as usize;

/// Binds `params` to `query`. `params` None means "no parameters": `%` is left alone.
pub fn bind(py: Python<'_>, query: &str, params: Option<&Bound<'_, PyAny>>, hstore_oid: Option<u32>) -> PyResult<BoundQuery> {
    let params = params.filter(|p| !p.is_none());
    let scan = scanned(py, query, params.is_some())?;
    let (template, effects) = (scan.template.clone(), scan.effects);
    let Some(params) = params else {
        return Ok(BoundQuery { sql: template.plain_text(), params: Vec::new(), shape: template.shape.clone(), effects, inline: None, untyped_unsure: false });
    };
    let values = match slot_values(py, &template, params) {
        Ok(values) => values,
        Err(e) => return rendered_as_psycopg_reads(py, query, params, hstore_oid).unwrap_or(Err(e)),
    };
    let encoder = Encoder::new(py, hstore_oid)?;
    // What the protocol cannot carry (several statements with parameters; a utility
    // statement's values; a value where only a constant parses; more than 65,535
    // parameters) is rendered client-side with psycopg's literals, as stock Django binds
    // everything, and runs without parameters.
    let with_literals = || -> PyResult<BoundQuery> {
        let sql = render_literals(&encoder, &template, &values)?;
        Ok(BoundQuery { sql, params: Vec::new(), shape: template.shape.clone(), effects, inline: None, untyped_unsure: false })
    };
    let constant_slot = || *scan.constant.get_or_init(|| untyped::constant_slot(&template.parts));
    if !values.is_empty() && (template.shape.multi_statement || !effects.binds_parameters || constant_slot())
        || values.len() > MAX_PARAMS
    {
        return with_literals();
    }
    let mut encoded: Vec<Param> = Vec::with_capacity(values.len());
    let mut numbers = Vec::with_capacity(values.len());
    // Identical typed values share one `$n`, so the server sees repeated expressions (in
    // SELECT and GROUP BY) as equal, as it does with inlined literals. Untyped values
    // (str, str lists, NULL) never share: PostgreSQL infers each one's type from where it
    // stands, and one shared parameter cannot be both text and varchar, inet[] and uuid[].
    // Few values (Django's usual statement): a scan; many (IN lists): a map.
    let mut seen: Option<FxMap<Param, usize>> = (values.len() > SCAN_SHARED_UP_TO).then(FxMap::default);
    for (i, value) in values.iter().enumerate() {
        let p = encoder.encode(value, i + 1)?;
        if p.oid != 0 && p.value.is_some() {
            let earlier = match &seen {
                None => encoded.iter().position(|e| *e == p).map(|k| k + 1),
                Some(map) => map.get(&p).copied(),
            };
            if let Some(n) = earlier {
                numbers.push(n);
                continue;
            }
            if let Some(map) = &mut seen {
                map.insert(p.clone(), encoded.len() + 1);
            }
        }
        encoded.push(p);
        numbers.push(encoded.len());
    }
    // An untyped value (str, None) where the server cannot infer a type (`%s IS NULL`,
    // `concat(%s)`): bound, the statement fails with "could not determine data type of
    // parameter"; stock's literal is accepted as unknown. Send what stock sends.
    let mut untyped_unsure = false;
    if encoded.iter().any(|p| p.oid == 0) {
        let ambiguous = scan.ambiguous.get_or_init(|| untyped::ambiguous_slots(&template.parts).into_boxed_slice());
        let untyped_there = template.parts.iter().zip(ambiguous.iter()).any(|(part, &flag)| {
            flag && matches!(part, Part::Slot(s) if encoded[numbers[*s] - 1].oid == 0)
        });
        if untyped_there || learned_literals(query) || repeats_untyped_in_grouping(query, &encoded) {
            return with_literals();
        }
        let inferred = scan.inferred.get_or_init(|| untyped::inferred_slots(&template.parts).into_boxed_slice());
        untyped_unsure = template.parts.iter().zip(inferred.iter()).any(|(part, &flag)| {
            !flag && matches!(part, Part::Slot(s) if encoded[numbers[*s] - 1].oid == 0)
        });
    }
    let bare = scan.bare.get_or_init(|| colnames::bare_items(&template.parts).into_boxed_slice());
    let sql = if bare.is_empty() { template.render(&numbers) } else { with_stock_names(&encoder, &template, &numbers, &values, bare) };
    let shape = template.shape.clone();
    let inline = (effects.client_side != ClientSide::Never).then(|| Inline { template, numbers });
    Ok(BoundQuery { sql, params: encoded, shape, effects, inline, untyped_unsure })
}

/// The statement with `$n`, a bare select-list placeholder aliased with the name stock's
/// literal gives its column (`SELECT %s` of a date: `$1 AS "date"`; none where the literal
/// has no cast: a str, a number, NULL stay `?column?`).
fn with_stock_names(encoder: &Encoder<'_>, template: &Template, numbers: &[usize], values: &[Bound<'_, PyAny>], bare: &[BareItem]) -> String {
    let aliases: Vec<(BareItem, String)> = bare
        .iter()
        .filter_map(|b| {
            let Part::Slot(s) = template.parts[b.slot_part] else { return None };
            let name = stock_column_name(encoder, &values[s], s + 1)?;
            Some((*b, format!(" AS {}", quote_identifier(&name))))
        })
        .collect();
    if aliases.is_empty() {
        return template.render(numbers);
    }
    colnames::render_aliased(&template.parts, numbers, &aliases)
}

/// The column name of `value`'s psycopg literal, found without running user code a second
/// time (bind has encoded the value already): a Json/Jsonb wrapper is `json`/`jsonb`
/// without calling its `dumps`; a value naming its own text (`__rustpg_param__`), or a
/// list holding a wrapper or such a value, is left unnamed.
fn stock_column_name(encoder: &Encoder<'_>, value: &Bound<'_, PyAny>, position: usize) -> Option<String> {
    let refs = crate::types::pyrefs::get(value.py()).ok()?;
    // A list's literal is cast to its first non-NULL element's type (`'{...}'::jsonb[]`).
    let mut first = value.clone();
    while let Some(item) = first
        .downcast::<pyo3::types::PyList>()
        .ok()
        .and_then(|l| l.iter().find(|i| !i.is_none()))
    {
        first = item;
    }
    if first.is_instance(refs.jsonb.bind(value.py())).ok()? {
        return Some("jsonb".into());
    }
    if first.is_instance(refs.json.bind(value.py())).ok()? {
        return Some("json".into());
    }
    fn runs_user_code(v: &Bound<'_, PyAny>, refs: &crate::types::pyrefs::PyRefs) -> bool {
        let py = v.py();
        if let Ok(items) = v.downcast::<pyo3::types::PyList>() {
            return items.iter().any(|i| runs_user_code(&i, refs));
        }
        if let Ok(items) = v.downcast::<pyo3::types::PyTuple>() {
            return items.iter().any(|i| runs_user_code(&i, refs));
        }
        v.is_instance(refs.jsonb.bind(py)).unwrap_or(true)
            || v.is_instance(refs.json.bind(py)).unwrap_or(true)
            || v.hasattr(pyo3::intern!(py, "__rustpg_param__")).unwrap_or(true)
    }
    if runs_user_code(value, refs) {
        return None;
    }
    colnames::literal_column_name(&encoder.literal(value, position).ok()?)
}

/// Equal untyped values (never shared: see `bind`) in a statement that groups or picks
/// distinct rows: with stock's literals `GROUP BY date_trunc('month', d)` matches the select
/// list's `date_trunc('month', d)`; with `$1` and `$2` it does not (42803, 42P10).
fn repeats_untyped_in_grouping(query: &str, encoded: &[Param]) -> bool {
    let mut untyped = encoded.iter().filter(|p| p.oid == 0 && p.value.is_some()).map(|p| &p.value);
    let repeated = if encoded.len() <= SCAN_SHARED_UP_TO {
        let values: Vec<_> = untyped.collect();
        values.iter().enumerate().any(|(i, v)| values[..i].contains(v))
    } else {
        let mut seen = std::collections::HashSet::new();
        untyped.any(|v| !seen.insert(v))
    };
    repeated && {
        let lower = query.to_ascii_lowercase();
        lower.contains("group") || lower.contains("distinct")
    }
}

/// The values do not fit the placeholders outside quotes and comments, but do fit them
/// read as psycopg reads them, everywhere (`DO $$ BEGIN PERFORM %s; END $$`, `%s` in a
/// comment): the statement as stock renders it, with literals. None when they fit neither.
fn rendered_as_psycopg_reads(
    py: Python<'_>,
    query: &str,
    params: &Bound<'_, PyAny>,
    hstore_oid: Option<u32>,
) -> Option<PyResult<BoundQuery>> {
    let template = placeholders::scan_everywhere(query).ok()?;
    let values = slot_values(py, &template, params).ok()?;
    let render = || {
        let sql = render_literals(&Encoder::new(py, hstore_oid)?, &template, &values)?;
        let effects = effects(&template.shape, &sql);
        Ok(BoundQuery { sql, params: Vec::new(), shape: template.shape.clone(), effects, inline: None, untyped_unsure: false })
    };
    Some(render())
}

/// Client-side rendering with literals, as psycopg's `ClientCursor.mogrify`.
pub fn mogrify(py: Python<'_>, query: &str, params: Option<&Bound<'_, PyAny>>, hstore_oid: Option<u32>) -> PyResult<String> {
    let params = params.filter(|p| !p.is_none());
    let template = scan_or_raise(py, query, params.is_some())?;
    let Some(params) = params else {
        return Ok(template.plain_text());
    };
    let values = match slot_values(py, &template, params) {
        Ok(values) => values,
        Err(e) => {
            return match rendered_as_psycopg_reads(py, query, params, hstore_oid) {
                Some(bound) => Ok(bound?.sql),
                None => Err(e),
            }
        }
    };
    render_literals(&Encoder::new(py, hstore_oid)?, &template, &values)
}

/// The statement with every value as psycopg's literal: the only place values enter SQL text.
fn render_literals(encoder: &Encoder<'_>, template: &Template, values: &[Bound<'_, PyAny>]) -> PyResult<String> {
    let literals = values.iter().enumerate().map(|(i, v)| encoder.literal(v, i + 1)).collect::<PyResult<Vec<_>>>()?;
    Ok(template.render_with(&literals))
}

/// A parameter as tokio-postgres sends it: the bytes are already encoded.
#[derive(Debug)]
pub struct Wire<'a>(pub &'a Param);

impl ToSql for Wire<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0.value {
            Some(v) => {
                out.extend_from_slice(v);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _: &Type) -> postgres_types::Format {
        match self.0.format {
            Format::Text => postgres_types::Format::Text,
            Format::Binary => postgres_types::Format::Binary,
        }
    }
    to_sql_checked!();
}

/// The declared type of a parameter; OID 0 lets the server infer it.
pub fn wire_type(oid: u32) -> Type {
    static UNSPECIFIED: OnceLock<Type> = OnceLock::new();
    if oid == 0 {
        return UNSPECIFIED.get_or_init(|| Type::new("unspecified".into(), 0, Kind::Pseudo, "pg_catalog".into())).clone();
    }
    Type::from_oid(oid).unwrap_or_else(|| Type::new(format!("oid_{oid}"), oid, Kind::Simple, "public".into()))
}

pub fn wire_params(params: &[Param]) -> Vec<(Wire<'_>, Type)> {
    params.iter().map(|p| (Wire(p), wire_type(p.oid))).collect()
}
