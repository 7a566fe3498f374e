//! Fingerprint shapes, the parser fallbacks, the analysis, and the golden corpus.

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
