//! What kind of statement this is: the one place that decides. Read off the leading
//! keywords (or the parsed AST, for the N+1 detector's kind):
//! - its session effects: the session tracks the transaction status with them
//!   (tokio-postgres keeps the ReadyForQuery status byte to itself) and resets or closes a
//!   session that a statement left dirty before the pool hands it out again;
//! - whether it returns rows, and whether their columns depend only on its text;
//! - the direction of a COPY;
//! - its kind (read, write, DDL, ...) for the N+1 detector.

use super::placeholders::Shape;
use sqlparser::ast::Statement;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    None,
    Begin,
    /// COMMIT / END / ROLLBACK / ABORT / PREPARE TRANSACTION (not ROLLBACK TO SAVEPOINT).
    End,
    /// ROLLBACK TO SAVEPOINT: an aborted transaction is usable again.
    RollbackToSavepoint,
    /// Runs where the session is, never opening a transaction (a server-side cursor's
    /// FETCH / MOVE / CLOSE, which psycopg sends with `_exec_command`, no BEGIN first).
    Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    pub tx: TxEffect,
    /// The statement may leave session state (settings, temp objects, prepared names,
    /// listeners, held cursors, advisory locks) behind for the next pool user.
    pub dirties_session: bool,
    /// CREATE/ALTER/DROP DATABASE: the server refuses while other sessions use the database
    /// involved, so the driver first closes its own idle pooled sessions.
    pub database_ddl: bool,
    /// PREPARE / DEALLOCATE / DISCARD touch prepared statements, which tokio-postgres's
    /// own type lookups rely on: such a session is closed instead of being reused.
    pub unpoolable: bool,
    /// CREATE / ALTER / DROP: prepared statements of the session may no longer fit.
    pub changes_schema: bool,
    /// Whether the statement may run with the simple protocol and client-side literals.
    pub client_side: ClientSide,
    /// The server takes `$n` parameters in this statement (a query, DML, DECLARE, EXPLAIN,
    /// CALL). Utility statements (SET, NOTIFY, COMMENT, CREATE ..., EXECUTE) take none:
    /// their values go as literals, as stock renders every statement.
    pub binds_parameters: bool,
}

/// Where the simple protocol (values rendered into the text, text results) may stand in
/// for an unnamed Parse/Bind/Describe/Execute: statements returning no rows or a few, for
/// which the server's cheaper handling of one Query message outweighs binary results.
/// Only a performance hint: the results are the same either way (`Decoder::same_from_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSide {
    Never,
    /// INSERT / UPDATE / DELETE without RETURNING; without parameters, transaction
    /// control and SAVEPOINT / RELEASE.
    NoRows,
    /// A SELECT ending in `LIMIT n` (n <= 100), Django's `COUNT(*)`, an INSERT ... RETURNING.
    FewRows,
}

impl Effects {
    /// What a statement that leaves the session as it was does.
    pub const NONE: Effects =
        Effects {
        tx: TxEffect::None,
        dirties_session: false,
        database_ddl: false,
        unpoolable: false,
        changes_schema: false,
        client_side: ClientSide::Never,
        binds_parameters: true,
    };
}

/// The session effects of a statement (`text_lower_hint`: its text, any case).
pub fn effects(shape: &Shape, text_lower_hint: &str) -> Effects {
    let kw = |i: usize| shape.keywords.get(i).map(String::as_str).unwrap_or("");
    let tx = match kw(0) {
        "BEGIN" | "START" => TxEffect::Begin,
        "COMMIT" | "END" | "ABORT" => TxEffect::End,
        "ROLLBACK" if kw(1) == "TO" => TxEffect::RollbackToSavepoint,
        "ROLLBACK" => TxEffect::End,
        "PREPARE" if kw(1) == "TRANSACTION" => TxEffect::End,
        _ => TxEffect::None,
    };
    let dirties_session = shape.multi_statement
        || match kw(0) {
            // SET LOCAL / SET CONSTRAINTS / SET TRANSACTION end with the transaction.
            "SET" => !matches!(kw(1), "LOCAL" | "CONSTRAINTS" | "TRANSACTION"),
            "RESET" | "PREPARE" | "DEALLOCATE" | "LISTEN" | "LOAD" | "DO" | "CALL" | "DECLARE" => true,
            "CREATE" => {
                matches!(kw(1), "TEMP" | "TEMPORARY")
                    || (matches!(kw(1), "LOCAL" | "GLOBAL") && matches!(kw(2), "TEMP" | "TEMPORARY"))
                    // CREATE OR REPLACE TEMP VIEW, CREATE TABLE pg_temp.t, CREATE FUNCTION pg_temp.f()
                    || words(text_lower_hint).any(is_temp_word)
            }
            // EXPLAIN ANALYZE runs its statement.
            "SELECT" | "WITH" | "VALUES" | "TABLE" | "EXPLAIN" => {
                // Runs for every read: one lowercase copy, then substring searches.
                let lower = text_lower_hint.to_ascii_lowercase();
                mentions_session_function(&lower) || selects_into_temp(&lower)
            }
            _ => false,
        };
    let database_ddl = matches!(kw(0), "CREATE" | "ALTER" | "DROP") && kw(1) == "DATABASE";
    let unpoolable = shape.multi_statement
        || matches!(kw(0), "DEALLOCATE" | "DISCARD")
        || (kw(0) == "PREPARE" && kw(1) != "TRANSACTION");
    let changes_schema = shape.multi_statement || matches!(kw(0), "CREATE" | "ALTER" | "DROP");
    let client_side = if shape.multi_statement || unpoolable { ClientSide::Never } else { client_side(shape, text_lower_hint) };
    // The statements PostgreSQL's parse analysis binds parameters in (CREATE TABLE AS does
    // too, but CREATE MATERIALIZED VIEW refuses them: every CREATE goes with literals).
    let binds_parameters =
        matches!(kw(0), "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "WITH" | "TABLE" | "DECLARE" | "EXPLAIN" | "CALL" | "");
    Effects { tx, dirties_session, database_ddl, unpoolable, changes_schema, client_side, binds_parameters }
}

/// Most rows a `LIMIT` may ask for and still count as "few".
const FEW_ROWS: u64 = 100;

fn client_side(shape: &Shape, sql: &str) -> ClientSide {
    let kw = |i: usize| shape.keywords.get(i).map(String::as_str).unwrap_or("");
    let returning = || contains_ignore_ascii_case(sql, "returning");
    match kw(0) {
        "INSERT" if returning() => ClientSide::FewRows,
        "INSERT" | "UPDATE" | "DELETE" if !returning() => ClientSide::NoRows,
        "SAVEPOINT" | "RELEASE" | "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" => ClientSide::NoRows,
        // As psycopg (either version) sends them: one Query, not Parse/Bind/Execute.
        "VACUUM" | "ANALYZE" => ClientSide::NoRows,
        "SELECT" if ends_with_small_limit(sql) || is_plain_count(sql) => ClientSide::FewRows,
        _ => ClientSide::Never,
    }
}

/// `... LIMIT n [OFFSET m] [FOR UPDATE ...]` at the very end, outside parentheses,
/// quotes and comments (the tail holds none of those), with n <= FEW_ROWS.
fn ends_with_small_limit(sql: &str) -> bool {
    let upper = sql.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == ';');
    let Some(at) = rfind_ignore_ascii_case(upper, " limit ") else { return false };
    let tail = &upper[at + 7..];
    if tail.contains(['(', ')', '\'', '"', '$', '%', '-', '/', '*']) {
        return false;
    }
    // A `--` comment earlier on the same line could hide the LIMIT.
    let line_start = upper[..at].rfind('\n').map_or(0, |i| i + 1);
    if upper[line_start..at].contains("--") {
        return false;
    }
    let mut words = tail.split_ascii_whitespace();
    let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) else { return false };
    let rest: Vec<String> = words.map(|w| w.to_ascii_uppercase()).collect();
    let mut i = 0;
    if rest.get(i).map(String::as_str) == Some("OFFSET") {
        if rest.get(i + 1).and_then(|w| w.parse::<u64>().ok()).is_none() {
            return false;
        }
        i += 2;
    }
    let locking = rest[i..].iter().all(|w| {
        matches!(w.as_str(), "FOR" | "UPDATE" | "SHARE" | "NO" | "KEY" | "OF" | "NOWAIT" | "SKIP" | "LOCKED")
            || w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b',')
    });
    n <= FEW_ROWS && (i == rest.len() || (rest[i] == "FOR" && locking))
}

/// Django's `count()`: one row (no GROUP BY).
fn is_plain_count(sql: &str) -> bool {
    sql.starts_with("SELECT COUNT(*) AS \"__count\" FROM ") && !contains_ignore_ascii_case(sql, "group by")
}

fn rfind_ignore_ascii_case(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).rev().find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Session-changing functions callable from a SELECT (`lower`: the statement in ASCII
/// lowercase). User-defined functions can do anything; `OPTIONS["reset_on_return"] =
/// "always"` covers those.
fn mentions_session_function(lower: &str) -> bool {
    ["set_config", "pg_advisory_lock", "pg_try_advisory_lock"].iter().any(|n| lower.contains(n))
}

/// `TEMP`, `TEMPORARY`, or a `pg_temp` / `pg_temp_N` schema name.
fn is_temp_word(w: &str) -> bool {
    w.eq_ignore_ascii_case("temp")
        || w.eq_ignore_ascii_case("temporary")
        || (w.len() >= 7 && w[..7].eq_ignore_ascii_case("pg_temp"))
}

/// The identifier-like words of a statement (quotes and punctuation are separators).
fn words(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')).filter(|w| !w.is_empty())
}

/// `SELECT ... INTO TEMP t` / `INTO pg_temp.t` creates a temporary table (`lower`: the
/// statement in ASCII lowercase).
fn selects_into_temp(lower: &str) -> bool {
    // Cheap reject: both words must occur somewhere.
    if !lower.contains("into") || !lower.contains("temp") {
        return false;
    }
    words(lower).any(|w| w == "into") && words(lower).any(is_temp_word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::placeholders::scan;

    fn fx(sql: &str) -> Effects {
        effects(&scan(sql, false).unwrap().shape, sql)
    }

    #[test]
    fn transactions() {
        assert_eq!(fx("BEGIN").tx, TxEffect::Begin);
        assert_eq!(fx("start transaction isolation level serializable").tx, TxEffect::Begin);
        assert_eq!(fx("COMMIT").tx, TxEffect::End);
        assert_eq!(fx("ROLLBACK").tx, TxEffect::End);
        assert_eq!(fx("ROLLBACK TO SAVEPOINT s1").tx, TxEffect::RollbackToSavepoint);
        assert_eq!(fx("SAVEPOINT s1").tx, TxEffect::None);
        assert_eq!(fx("SELECT 1").tx, TxEffect::None);
    }

    #[test]
    fn session_state() {
        assert!(fx("SET search_path TO x").dirties_session);
        assert!(fx("SET TIME ZONE 'UTC'").dirties_session);
        assert!(!fx("SET LOCAL statement_timeout = 5").dirties_session);
        assert!(!fx("SET CONSTRAINTS ALL IMMEDIATE").dirties_session);
        assert!(fx("CREATE TEMP TABLE t (id int)").dirties_session);
        assert!(fx("create temporary table t (id int)").dirties_session);
        assert!(!fx("CREATE TABLE t (id int)").dirties_session);
        assert!(fx("SELECT set_config('TimeZone', 'UTC', false)").dirties_session);
        assert!(fx("SELECT pg_advisory_lock(1)").dirties_session);
        assert!(!fx("SELECT pg_advisory_xact_lock(1)").dirties_session);
        assert!(fx("PREPARE p AS SELECT 1").dirties_session);
        assert!(fx("LISTEN chan").dirties_session);
        assert!(fx("DECLARE c CURSOR WITH HOLD FOR SELECT 1").dirties_session);
        assert!(!fx("SELECT * FROM t WHERE a = 1").dirties_session);
        assert!(fx("SELECT 1; SET x = 1").dirties_session);
        assert!(fx("DROP DATABASE t").database_ddl);
        assert!(fx("CREATE DATABASE t WITH TEMPLATE x").database_ddl);
        assert!(!fx("DROP TABLE t").database_ddl);
    }

    #[test]
    fn temporary_objects_however_spelled() {
        assert!(fx("SELECT 1 AS x INTO TEMP t").dirties_session);
        assert!(fx("select 1 into temporary t").dirties_session);
        assert!(fx("WITH x AS (SELECT 1) SELECT * INTO TEMP TABLE t FROM x").dirties_session);
        assert!(fx("SELECT 1 INTO pg_temp.t").dirties_session);
        assert!(fx("CREATE TABLE pg_temp.t (x int)").dirties_session);
        assert!(fx("CREATE TABLE \"pg_temp\".t (x int)").dirties_session);
        assert!(fx("CREATE OR REPLACE TEMP VIEW v AS SELECT 1").dirties_session);
        assert!(fx("CREATE FUNCTION pg_temp.f() RETURNS int AS 'SELECT 1' LANGUAGE sql").dirties_session);
        assert!(fx("EXPLAIN ANALYZE SELECT set_config('work_mem', '9MB', false)").dirties_session);
        assert!(!fx("SELECT 1 INTO t").dirties_session);
        assert!(!fx("SELECT temp FROM weather").dirties_session);
        assert!(!fx("SELECT temperature INTO archive FROM weather").dirties_session);
        assert!(!fx("CREATE TABLE templates (x int)").dirties_session);
        assert!(!fx("EXPLAIN SELECT 1").dirties_session);
    }
}

/// Whether a statement may return rows, and whether its columns depend only on its text
/// (so their description can be remembered by text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    None,
    /// Same text, same columns (until DDL).
    ByText,
    /// FETCH / EXECUTE / CALL: the columns depend on a cursor, prepared statement or
    /// procedure named in the text, which can be redefined.
    Varying,
}

pub fn result_rows(shape: &Shape, sql: &str) -> Rows {
    match shape.keywords.first().map(String::as_str) {
        Some("SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN") => Rows::ByText,
        Some("FETCH" | "EXECUTE" | "CALL") => Rows::Varying,
        Some("MOVE") => Rows::None,
        _ if contains_ignore_ascii_case(sql, "returning") => Rows::ByText,
        _ => Rows::None,
    }
}

/// Whether an empty result still has columns to describe (`cursor.description`).
pub fn may_return_rows(shape: &Shape, sql: &str) -> bool {
    match shape.keywords.first().map(String::as_str) {
        Some("SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "FETCH" | "EXPLAIN" | "MOVE") => true,
        _ => contains_ignore_ascii_case(sql, "returning"),
    }
}

/// `COPY ... TO STDOUT` sends data to the client; anything else (`FROM STDIN`) takes it.
pub fn copy_to_client(sql: &str) -> bool {
    contains_ignore_ascii_case(sql, "to stdout")
}

fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod client_side_tests {
    use super::*;
    use crate::sql::placeholders::scan;

    fn side(sql: &str) -> ClientSide {
        effects(&scan(sql, true).unwrap().shape, sql).client_side
    }

    #[test]
    fn few_rows_and_no_rows() {
        use ClientSide::*;
        assert_eq!(side(r#"SELECT "a"."id" FROM "a" WHERE "a"."id" = %s LIMIT 21"#), FewRows);
        assert_eq!(side("SELECT 1 AS a FROM t WHERE x = %s LIMIT 1 FOR UPDATE SKIP LOCKED"), FewRows);
        assert_eq!(side("SELECT * FROM t ORDER BY id LIMIT 25 OFFSET 50;"), FewRows);
        assert_eq!(side(r#"SELECT COUNT(*) AS "__count" FROM "t" WHERE x = %s"#), FewRows);
        assert_eq!(side(r#"INSERT INTO t (a) VALUES (%s) RETURNING "t"."id""#), FewRows);
        assert_eq!(side("UPDATE t SET a = %s WHERE id = %s"), NoRows);
        assert_eq!(side("DELETE FROM t WHERE id IN (%s, %s)"), NoRows);
        assert_eq!(side(r#"SAVEPOINT "s1""#), NoRows);
        assert_eq!(side("VACUUM shop_book"), NoRows);
        assert_eq!(side("vacuum (analyze, verbose) t"), NoRows);
        assert_eq!(side("ANALYZE t"), NoRows);
        assert_eq!(side("EXPLAIN ANALYZE SELECT 1"), Never);
        // Many rows, or rows we can't bound: binary results.
        assert_eq!(side("SELECT * FROM t LIMIT 1000"), Never);
        assert_eq!(side("SELECT * FROM t"), Never);
        assert_eq!(side("SELECT * FROM (SELECT * FROM t LIMIT 5) s"), Never);
        assert_eq!(side("SELECT * FROM t -- LIMIT 5"), Never);
        assert_eq!(side("SELECT * FROM t WHERE a = '-- x' LIMIT 5"), Never);
        assert_eq!(side(r#"SELECT COUNT(*) AS "__count" FROM "t" GROUP BY x"#), Never);
        assert_eq!(side("UPDATE t SET a = 1 RETURNING id"), Never);
        assert_eq!(side("SELECT 1; SELECT 2 LIMIT 1"), Never);
        assert_eq!(side("FETCH 10 FROM c"), Never);
        assert_eq!(side("SET TIME ZONE 'UTC'"), Never);
        assert_eq!(side("DEALLOCATE ALL"), Never);
    }
}

#[cfg(test)]
mod binds_parameters_tests {
    use super::*;
    use crate::sql::placeholders::scan;

    fn binds(sql: &str) -> bool {
        effects(&scan(sql, true).unwrap().shape, sql).binds_parameters
    }

    #[test]
    fn queries_and_dml_bind_utility_statements_do_not() {
        for sql in [
            "SELECT %s",
            "(SELECT %s) UNION (SELECT 1)",
            "/* c */ with x AS (SELECT %s) SELECT * FROM x",
            "INSERT INTO t VALUES (%s)",
            "update t SET a = %s",
            "DELETE FROM t WHERE a = %s",
            "MERGE INTO t USING s ON t.a = %s WHEN MATCHED THEN DELETE",
            "VALUES (%s)",
            "DECLARE c CURSOR FOR SELECT %s",
            "EXPLAIN ANALYZE SELECT %s",
            "CALL p(%s)",
        ] {
            assert!(binds(sql), "{sql}");
        }
        for sql in [
            "SET statement_timeout = %s",
            "set local work_mem = %s",
            "NOTIFY c, %s",
            "COMMENT ON TABLE t IS %s",
            "CREATE TABLE t (a int DEFAULT %s)",
            "CREATE TABLE t AS SELECT %s",
            "ALTER TABLE t ALTER a SET DEFAULT %s",
            "EXECUTE p(%s)",
            "COPY (SELECT %s) TO STDOUT",
        ] {
            assert!(!binds(sql), "{sql}");
        }
    }
}

#[cfg(test)]
mod result_rows_tests {
    use super::*;
    use crate::sql::placeholders::scan;

    fn rows(sql: &str) -> Rows {
        result_rows(&scan(sql, false).unwrap().shape, sql)
    }

    #[test]
    fn which_statements_are_described_and_remembered() {
        assert_eq!(rows("SELECT 1"), Rows::ByText);
        assert_eq!(rows("with x as (select 1) select * from x"), Rows::ByText);
        assert_eq!(rows("INSERT INTO t VALUES (1) RETURNING id"), Rows::ByText);
        assert_eq!(rows("UPDATE t SET a = 1 returning *"), Rows::ByText);
        assert_eq!(rows("INSERT INTO t VALUES (1)"), Rows::None);
        assert_eq!(rows("CREATE TABLE t (a int)"), Rows::None);
        assert_eq!(rows("MOVE 1 FROM c"), Rows::None);
        // Columns depend on a cursor / prepared statement / procedure named in the text.
        assert_eq!(rows("FETCH FORWARD 10 FROM \"c\""), Rows::Varying);
        assert_eq!(rows("EXECUTE p(1)"), Rows::Varying);
        assert_eq!(rows("CALL proc(1)"), Rows::Varying);
    }

    #[test]
    fn which_empty_results_have_columns() {
        let may = |sql: &str| may_return_rows(&scan(sql, false).unwrap().shape, sql);
        assert!(may("SELECT 1 WHERE false") && may("MOVE 1 FROM c") && may("FETCH 1 FROM c"));
        assert!(may("delete from t returning id") && may("INSERT INTO t VALUES (1) RETURNING *"));
        assert!(!may("INSERT INTO t VALUES (1)") && !may("EXECUTE p(1)") && !may("CREATE TABLE t (a int)"));
    }

    #[test]
    fn copy_directions() {
        assert!(copy_to_client("COPY t TO STDOUT"));
        assert!(copy_to_client("copy (select 1) to stdout with (format csv)"));
        assert!(!copy_to_client("COPY t FROM STDIN"));
    }
}

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

/// The N+1 detector's kind of a parsed statement.
pub fn kind_of_statement(s: &Statement) -> StatementKind {
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
pub fn kind_from_text(normalized: &str) -> StatementKind {
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

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn kinds_from_text() {
        assert_eq!(kind_from_text("select ?"), StatementKind::Select);
        assert_eq!(kind_from_text("with x as (select ?) select * from x"), StatementKind::Select);
        assert_eq!(kind_from_text("rollback to savepoint s"), StatementKind::Savepoint);
        assert_eq!(kind_from_text("rollback"), StatementKind::Transaction);
        assert_eq!(kind_from_text("move ? from c"), StatementKind::Cursor);
        assert_eq!(kind_from_text("vacuum t"), StatementKind::Utility);
        assert_eq!(kind_from_text("frobnicate"), StatementKind::Other);
    }
}

