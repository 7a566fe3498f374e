//! Normalization: on the parsed AST (values become one placeholder, lists collapse,
//! generated names are replaced), then token by token on the printed or original text.

use sqlparser::ast::{
    BinaryOperator, CastKind, CloseCursor, Expr, Ident, LimitClause, Query, SetExpr, Statement, UnaryOperator, Value, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::ops::ControlFlow;
// ---------------------------------------------------------------------------- AST normalization

pub(super) struct Normalizer;

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
pub(super) fn canonical(sql: &str, lists: bool) -> Option<String> {
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

