//! Where a parameter stands beyond what the server binds, so the statement must go with
//! literals, as stock Django sends it: an untyped one (a str or None, sent as `unknown`)
//! beyond the server's type inference, or any one where the grammar takes only a constant.

use super::placeholders::Part;

/// Functions whose arguments are `"any"` (`pg_proc.proargtypes`, PostgreSQL 13-17), and
/// `ROW`: the server cannot infer a type for an untyped parameter there (`could not
/// determine data type of parameter $1`), while the literal Django's default cursor sends
/// (`'abc'`, `NULL`) is accepted as `unknown`.
const ANY_ARGUMENT_FUNCTIONS: &[&str] = &[
    "pg_typeof", "concat", "concat_ws", "format", "num_nulls", "num_nonnulls", "json_build_object",
    "json_build_array", "jsonb_build_object", "jsonb_build_array", "pg_column_size", "pg_column_compression",
    "pg_collation_for", "count", "rank", "dense_rank", "percent_rank", "cume_dist", "json_object_agg",
    "json_object_agg_strict", "json_object_agg_unique", "json_object_agg_unique_strict", "jsonb_object_agg",
    "jsonb_object_agg_strict", "jsonb_object_agg_unique", "jsonb_object_agg_unique_strict", "row",
    "xmlelement", "xmlforest",
];

/// Words that open a subquery inside a bare `(`: its commas separate columns, not the fields
/// of a row constructor.
const SUBQUERY_WORDS: &[&str] = &["select", "with", "values", "table"];

/// Keywords after which `(` opens a group, a subquery or a row, not a call.
const GROUP_KEYWORDS: &[&str] = &[
    "select", "where", "and", "or", "not", "on", "when", "then", "else", "distinct", "by", "having",
    "returning", "set", "between", "case", "from", "union", "all", "intersect", "except", "return",
];

/// An open `(` while scanning for ambiguous slots.
#[derive(Default)]
struct Paren {
    /// An "any" function's argument list (or a group inside one).
    any: bool,
    /// No word before it: a group, a subquery, or (with a comma at its level) a row constructor.
    bare: bool,
    /// Its first word has been seen (a slot counts as one).
    started: bool,
    subquery: bool,
    comma: bool,
    /// Slots directly inside a bare `(`, flagged when it turns out to be a row.
    slots: Vec<usize>,
}

/// What the slot passes read of a statement, in order: its slots (with the text on either
/// side), and its characters outside quotes (a quote's opening is reported, not its text).
enum Code<'a> {
    Slot { index: usize, previous: &'a str, next: &'a str },
    Char(char),
    QuoteOpened,
}

fn walk<'a>(parts: &'a [Part], mut on: impl FnMut(Code<'a>)) {
    let mut quote: Option<char> = None;
    for (index, part) in parts.iter().enumerate() {
        match part {
            Part::Slot(_) => {
                let text = |k: Option<usize>| match k.and_then(|k| parts.get(k)) {
                    Some(Part::Text(t)) => t.as_str(),
                    _ => "",
                };
                on(Code::Slot { index, previous: text(index.checked_sub(1)), next: text(Some(index + 1)) });
            }
            Part::Text(t) => {
                for c in t.chars() {
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == '\'' || c == '"' => {
                            quote = Some(c);
                            on(Code::QuoteOpened);
                        }
                        None => on(Code::Char(c)),
                    }
                }
            }
        }
    }
}

/// For each part of a statement, whether it is a slot where an untyped parameter stands
/// beyond the server's inference: before `IS [NOT] NULL` / `ISNULL` / `NOTNULL` / `IS [NOT]
/// DISTINCT FROM NULL`, as an argument of an `"any"` function, or as a field of a row
/// constructor (`ROW(%s)`, `(%s, %s)`). A statement with an untyped value (str, None) in such
/// a slot runs with client-side literals, as stock sends it; a false positive costs only
/// that. One pass over the text, once per statement text (`bind` keeps it with the scan).
pub fn ambiguous_slots(parts: &[Part]) -> Vec<bool> {
    let mut out = vec![false; parts.len()];
    let mut open: Vec<Paren> = Vec::new();
    let mut word = String::new();
    let mut word_ended = false;
    // The first word inside a bare `(` tells a subquery from a row or a group.
    let note_word = |open: &mut Vec<Paren>, word: &str| {
        if let Some(p) = open.last_mut() {
            if !p.started && !word.is_empty() {
                p.started = true;
                p.subquery = SUBQUERY_WORDS.contains(&word);
            }
        }
    };
    walk(parts, |code| match code {
        Code::Slot { index: i, previous, next } => {
            out[i] = open.last().is_some_and(|p| p.any) || before_null_test(next) || after_null_distinct(previous);
            if let Some(p) = open.last_mut() {
                p.started = true;
                if p.bare && !p.any {
                    p.slots.push(i);
                }
            }
            word.clear();
        }
        Code::QuoteOpened => {
            note_word(&mut open, &word);
            if let Some(p) = open.last_mut() {
                p.started = true;
            }
            word.clear();
        }
        Code::Char(c) => {
            if !(c.is_ascii_alphanumeric() || c == '_') {
                note_word(&mut open, &word);
            }
            match c {
                '(' => {
                    let paren = if word.is_empty() || GROUP_KEYWORDS.contains(&word.as_str()) {
                        // A bare `(` inside an "any" function's arguments is still one.
                        Paren { any: open.last().is_some_and(|p| p.any), bare: true, ..Paren::default() }
                    } else {
                        Paren { any: ANY_ARGUMENT_FUNCTIONS.contains(&word.as_str()), ..Paren::default() }
                    };
                    open.push(paren);
                    word.clear();
                }
                ')' => {
                    if let Some(closed) = open.pop() {
                        if closed.comma && !closed.subquery {
                            for &s in &closed.slots {
                                out[s] = true;
                            }
                        } else if let Some(outer) = open.last_mut().filter(|p| p.bare && !p.any) {
                            // `((%s), 1)`: a group's slots are its enclosing row's fields.
                            outer.slots.extend(closed.slots);
                        }
                    }
                    word.clear();
                }
                ',' => {
                    if let Some(p) = open.last_mut() {
                        p.comma = true;
                    }
                    word.clear();
                }
                c if c.is_ascii_alphanumeric() || c == '_' => {
                    if word_ended {
                        word.clear();
                        word_ended = false;
                    }
                    word.push(c.to_ascii_lowercase())
                }
                // `concat (`: the name still counts across spaces.
                c if c.is_whitespace() => word_ended = true,
                _ => word.clear(),
            }
            if word.len() > 32 {
                word.clear();
            }
        }
    });
    out
}

/// For each part of a statement, whether it is a slot where the server surely infers an
/// untyped value's type: after a comparison (`= %s`, `<> %s`, `LIKE %s`), as a `CASE`
/// result (`THEN %s`, `ELSE %s`), in an `IN (...)` list, or as a field of an INSERT's
/// `VALUES` row (typed by its column). Elsewhere a statement's first run inside a
/// transaction is guarded (`session::run::UntypedGuard`); this spares Django's usual
/// statements that round trip (and a write's subtransaction).
pub fn inferred_slots(parts: &[Part]) -> Vec<bool> {
    #[derive(PartialEq)]
    enum Open {
        ValuesRow,
        InList,
        Other,
    }
    let insert = parts.iter().find_map(|p| match p {
        Part::Text(t) if !t.trim().is_empty() => Some(t.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("insert"))),
        _ => None,
    }) == Some(true);
    let mut out = vec![false; parts.len()];
    let mut open: Vec<Open> = Vec::new();
    let mut word = String::new();
    let mut last_word = String::new();
    let mut seen_values = false;
    // A word ends: it becomes the last word (`VALUES` at the top level is noted).
    fn end_word(word: &mut String, last_word: &mut String, top_level: bool, seen_values: &mut bool) {
        if !word.is_empty() {
            if word == "values" && top_level {
                *seen_values = true;
            }
            *last_word = std::mem::take(word);
        }
    }
    walk(parts, |code| match code {
        Code::Slot { index, previous, next } => {
            let (previous, next) = (previous.trim_end(), next.trim_start());
            let element = (previous.ends_with('(') || previous.ends_with(','))
                && (next.starts_with(')') || next.starts_with(','));
            let in_list = element && matches!(open.last(), Some(Open::InList | Open::ValuesRow));
            out[index] = after_comparison(previous) || in_list;
            word.clear();
            last_word.clear();
        }
        Code::QuoteOpened => {
            end_word(&mut word, &mut last_word, open.is_empty(), &mut seen_values);
            last_word.clear();
        }
        Code::Char(c) if c.is_ascii_alphanumeric() || c == '_' => word.push(c.to_ascii_lowercase()),
        Code::Char(c) => {
            end_word(&mut word, &mut last_word, open.is_empty(), &mut seen_values);
            match c {
                '(' => {
                    let values_row = insert && seen_values && open.is_empty();
                    open.push(if values_row {
                        Open::ValuesRow
                    } else if last_word == "in" {
                        Open::InList
                    } else {
                        Open::Other
                    });
                    last_word.clear();
                }
                ')' => {
                    open.pop();
                    last_word.clear();
                }
                c if c.is_whitespace() => {}
                _ => last_word.clear(),
            }
        }
    });
    out
}

/// `= %s`, `<> %s`, `!= %s`, `< %s`, `<= %s`, `> %s`, `>= %s` (not `=> %s`, a named
/// argument), `LIKE %s`, `ILIKE %s`, `THEN %s`, `ELSE %s`.
fn after_comparison(previous: &str) -> bool {
    const OPERATOR: &[char] = &['+', '-', '*', '/', '<', '>', '=', '~', '!', '@', '#', '%', '^', '&', '|', '`', '?', ':'];
    // The operator at the end of `previous`: its characters, back to the last non-operator one.
    let operator = previous.trim_end_matches(OPERATOR);
    let operator = &previous[operator.len()..];
    if !operator.is_empty() {
        return matches!(operator, "=" | "<>" | "!=" | "<" | "<=" | ">" | ">=");
    }
    let last = previous.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("");
    ["like", "ilike", "then", "else"].iter().any(|w| last.eq_ignore_ascii_case(w))
}

/// Type names PostgreSQL takes before a string constant (`interval '1 day'`, `date
/// '2020-01-01'`, `ltree 'a.b'`): built-in names and aliases, and common extensions' types.
const CONSTANT_TYPES: &[&str] = &[
    "bigint", "bit", "bool", "boolean", "box", "bpchar", "bytea", "char", "character", "cidr", "circle", "date",
    "daterange", "datemultirange", "dec", "decimal", "float", "float4", "float8", "inet", "int", "int2", "int4",
    "int4range", "int4multirange", "int8", "int8range", "int8multirange", "integer", "interval", "json", "jsonb",
    "jsonpath", "line", "lseg", "macaddr", "macaddr8", "money", "name", "numeric", "numrange", "nummultirange",
    "oid", "path", "pg_lsn", "pg_snapshot", "point", "polygon", "real", "regclass", "regconfig", "regdictionary",
    "regnamespace", "regoper", "regoperator", "regproc", "regprocedure", "regrole", "regtype", "smallint", "text",
    "time", "timestamp", "timestamptz", "timetz", "tsmultirange", "tsquery", "tsrange", "tstzmultirange",
    "tstzrange", "tsvector", "txid_snapshot", "uuid", "varbit", "varchar", "xml", "citext", "hstore", "ltree",
    "lquery", "ltxtquery", "cube", "seg", "isbn", "isbn13", "issn", "issn13", "ean13", "upc", "ismn", "ismn13",
    "geometry", "geography", "box2d", "box3d", "vector", "halfvec", "sparsevec",
];

/// Whether some slot stands where the grammar takes only a constant: after a type name
/// (`interval %s`, `timestamp with time zone %s`) or as `extract`'s field (`extract(%s
/// FROM d)`). Bound, `$n` there is a syntax error; stock's literal is accepted.
pub fn constant_slot(parts: &[Part]) -> bool {
    parts.iter().enumerate().skip(1).any(|(i, part)| {
        matches!(part, Part::Slot(_)) && matches!(&parts[i - 1], Part::Text(t) if wants_constant(t))
    })
}

fn wants_constant(previous: &str) -> bool {
    let trimmed = previous.trim_end();
    // `ORDER BY %s` / `GROUP BY %s`: stock's integer literal is a column position (and a
    // string one an error); a bound value is a constant, which sorts or groups nothing.
    if let Some(head) = trimmed.len().checked_sub(2).and_then(|at| trimmed.get(..at).filter(|_| trimmed[at..].eq_ignore_ascii_case("by"))) {
        let head = head.trim_end();
        if head.len() < trimmed.len() - 2 {
            let word = head.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("");
            if word.eq_ignore_ascii_case("order") || word.eq_ignore_ascii_case("group") {
                return true;
            }
        }
    }
    if let Some(call) = trimmed.strip_suffix('(') {
        let call = call.trim_end();
        return call.len() >= 7 && call[call.len() - 7..].eq_ignore_ascii_case("extract")
            && !call[..call.len() - 7].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '"');
    }
    if !trimmed.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    let mut words = trimmed.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').map(str::to_ascii_lowercase);
    let mut back = || words.next().unwrap_or_default();
    let last = back();
    match last.as_str() {
        "zone" => back() == "time" && matches!(back().as_str(), "with" | "without"),
        "precision" => back() == "double",
        "varying" => matches!(back().as_str(), "character" | "bit"),
        word => CONSTANT_TYPES.contains(&word),
    }
}

/// `NULL IS [NOT] DISTINCT FROM %s`.
fn after_null_distinct(previous: &str) -> bool {
    let mut words = previous.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').filter(|w| !w.is_empty());
    let mut last = || words.next().map(str::to_ascii_lowercase).unwrap_or_default();
    if last() != "from" || last() != "distinct" {
        return false;
    }
    let mut w = last();
    if w == "not" {
        w = last();
    }
    w == "is" && last() == "null"
}

fn before_null_test(next: &str) -> bool {
    let mut words = next.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').filter(|w| !w.is_empty());
    let mut next_word = || words.next().map(str::to_ascii_lowercase).unwrap_or_default();
    let first = next_word();
    if first == "isnull" || first == "notnull" {
        return true;
    }
    if first != "is" {
        return false;
    }
    let mut w = next_word();
    if w == "not" {
        w = next_word();
    }
    match w.as_str() {
        "null" => true,
        // `%s IS [NOT] DISTINCT FROM NULL`
        "distinct" => next_word() == "from" && next_word() == "null",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::placeholders::scan;

    #[test]
    fn untyped_slots_the_server_cannot_type() {
        let ambiguous = |sql: &str| -> Vec<bool> {
            let t = scan(sql, true).unwrap();
            let flags = ambiguous_slots(&t.parts);
            (0..t.parts.len()).filter(|&i| matches!(t.parts[i], Part::Slot(_))).map(|i| flags[i]).collect()
        };
        assert_eq!(ambiguous("SELECT * FROM t WHERE (%(q)s IS NULL OR title = %(q)s)"), [true, false]);
        assert_eq!(ambiguous("SELECT %s is not null, %s ISNULL, %s notnull, (%s) IS NULL"), [true, true, true, true]);
        assert_eq!(ambiguous("SELECT concat(%s, lower(%s)), pg_catalog.format('%%s', %s), CONCAT_WS (',', %s)"), [true, false, true, true]);
        assert_eq!(ambiguous("SELECT jsonb_build_object('k', %s, 'n', (%s)), json_build_array(%s)"), [true, true, true]);
        assert_eq!(ambiguous("SELECT * FROM t WHERE a = %s AND b IS NULL AND c IN (%s, %s) AND d = coalesce(%s, 'x')"), [false, false, false, false]);
        assert_eq!(ambiguous("SELECT %s IS DISTINCT FROM a, %s ISOLATED, %s is nullable"), [false, false, false]);
        // Parentheses inside quotes do not count; an "any" function's nested call does not leak.
        assert_eq!(ambiguous("SELECT format('(%%s', %s), concat(x) || %s, \"concat(\" = %s"), [true, false, false]);
        // Row constructors (with or without ROW, nested groups as fields), not subqueries,
        // IN lists, VALUES rows or a lone group; aggregates taking "any".
        assert_eq!(ambiguous("SELECT (%s, %s), ROW (%s), row_to_json(row(%s)), ((%s), 1)"), [true, true, true, true, true]);
        assert_eq!(ambiguous("SELECT (%s) || 'x', a IN (%s, %s), (SELECT %s, 1) FROM t"), [false, false, false, false]);
        assert_eq!(ambiguous("INSERT INTO \"t\" (\"a\", \"b\") VALUES (%s, %s)"), [false, false]);
        assert_eq!(ambiguous("SELECT count(%s), json_object_agg(%s, x), rank(%s) WITHIN GROUP (ORDER BY %s)"), [true, true, true, false]);
        assert_eq!(ambiguous("SELECT %s IS NOT DISTINCT FROM NULL, %s is distinct from null, %s IS DISTINCT FROM nullif(a, 1)"), [true, true, false]);
        assert_eq!(ambiguous("SELECT NULL IS NOT DISTINCT FROM %s, null is distinct from %s, a IS DISTINCT FROM %s"), [true, true, false]);
        assert_eq!(ambiguous("SELECT xmlelement(name x, %s), xmlforest(%s AS y)"), [true, true]);
    }

    #[test]
    fn slots_where_the_server_surely_infers_a_type() {
        let inferred = |sql: &str| -> Vec<bool> {
            let t = scan(sql, true).unwrap();
            let flags = inferred_slots(&t.parts);
            (0..t.parts.len()).filter(|&i| matches!(t.parts[i], Part::Slot(_))).map(|i| flags[i]).collect()
        };
        // Django's usual statements.
        assert_eq!(inferred(r#"INSERT INTO "t" ("a", "b") VALUES (%s, %s), (%s, %s) RETURNING "t"."id""#), [true; 4]);
        assert_eq!(inferred(r#"UPDATE "t" SET "a" = %s, "b" = CASE WHEN ("t"."id" = %s) THEN %s ELSE %s END"#), [true; 4]);
        assert_eq!(inferred(r#"SELECT 1 FROM "t" WHERE ("t"."a" <> %s AND "t"."b" IN (%s, %s) AND "t"."c"::text LIKE %s) LIMIT 1"#), [true; 4]);
        assert_eq!(inferred(r#"DELETE FROM "t" WHERE "t"."id" IN (%s) OR x >= %s OR y <= %s OR z < %s OR w > %s"#), [true; 5]);
        // Anything else is not known to be inferred.
        assert_eq!(inferred("SELECT %s, f(%s), g(a => %s), j -> %s, x || %s"), [false; 5]);
        assert_eq!(inferred("INSERT INTO t SELECT %s IS NULL, f(%s, 1)"), [false, false]);
        assert_eq!(inferred("INSERT INTO t VALUES (f(%s, 1), %s || 'x')"), [false, false]);
        assert_eq!(inferred("SELECT a FROM t WHERE a = '=' || %s AND b IN (SELECT %s)"), [false, false]);
        assert_eq!(inferred("SELECT x @> %s, y <@ %s, z := %s"), [false, false, false]);
    }

    #[test]
    fn slots_where_only_a_constant_parses() {
        let constant = |sql: &str| constant_slot(&scan(sql, true).unwrap().parts);
        for sql in [
            "SELECT now() - interval %s",
            "SELECT DATE %s, 1",
            "SELECT timestamp with time zone %s",
            "SELECT double precision %s",
            "SELECT character varying %s",
            "SELECT public.ltree %s",
            "SELECT extract(%s FROM now())",
            "SELECT EXTRACT ( %s from d) FROM t",
            "SELECT a, b FROM t ORDER BY %s",
            "SELECT a, count(*) FROM t group  by %s",
        ] {
            assert!(constant(sql), "{sql}");
        }
        for sql in [
            "SELECT %s",
            "SELECT * FROM t WHERE a = %s AND b IN (%s) LIMIT %s",
            "SELECT d AT TIME ZONE %s",
            "SELECT \"interval\" %s",
            "SELECT interval_of(%s), my_extract(%s), date_part(%s, d)",
            "SELECT CASE WHEN a THEN %s ELSE %s END, x BETWEEN %s AND %s",
            "SELECT %s::interval, CAST(%s AS date)",
            "SELECT * FROM t ORDER BY a LIMIT %s",
            "SELECT * FROM t WHERE standby %s",
            "SELECT rank() OVER (PARTITION BY %s)",
        ] {
            assert!(!constant(sql), "{sql}");
        }
    }
}
