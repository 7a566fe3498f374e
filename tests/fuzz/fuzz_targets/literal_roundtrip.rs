//! Literals built by `src/sql/literal.rs`, parsed back by a real PostgreSQL, equal the
//! fuzzed input: string literals, text[] elements, range bounds and hstore pairs.
//! Needs the server at $DATABASE_URL (default 127.0.0.1:5432, user postgres, db postgres)
//! (creates the hstore extension there if missing); one connection per fuzz process.
#![no_main]
use _native::sql::literal::{push_array_element, push_hstore_item, push_range_bound, quote_string};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, Statement};

#[derive(Arbitrary, Debug)]
struct Input {
    items: Vec<Option<String>>,
    lo: String,
    hi: String,
    pairs: Vec<(String, Option<String>)>,
}

struct Db {
    rt: Runtime,
    client: Client,
    array: Statement,
    range: Statement,
    hstore: Statement,
}

fn db() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (client, array, range, hstore) = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect to PostgreSQL");
            tokio::spawn(conn);
            // C collation: the bounds' order is byte order, which the target sorts by.
            client.batch_execute("CREATE EXTENSION IF NOT EXISTS hstore").await.expect("hstore (postgresql-contrib)");
            client
                .batch_execute(r#"CREATE TYPE pg_temp.fuzz_textrange AS RANGE (subtype = text, collation = "C")"#)
                .await
                .unwrap();
            let array = client.prepare("SELECT $1::text::text[]").await.unwrap();
            let range = client
                .prepare("SELECT lower(r), upper(r), lower_inc(r), upper_inc(r) FROM (SELECT $1::text::pg_temp.fuzz_textrange AS r) s")
                .await
                .unwrap();
            let hstore = client
                .prepare("SELECT akeys(h), avals(h) FROM (SELECT $1::text::hstore AS h) s")
                .await
                .expect("hstore extension in the fuzz database");
            (client, array, range, hstore)
        });
        Db { rt, client, array, range, hstore }
    })
}

fn clean(s: &str) -> bool {
    !s.contains('\0')
}

fuzz_target!(|input: Input| {
    let Input { items, lo, hi, pairs } = input;
    if !items.iter().flatten().all(|s| clean(s))
        || !clean(&lo)
        || !clean(&hi)
        || !pairs.iter().all(|(k, v)| clean(k) && v.as_deref().is_none_or(clean))
    {
        return;
    }
    let db = db();
    db.rt.block_on(async {
        // quote_string: every string as one column of a plain SELECT.
        let strings: Vec<&str> = items.iter().flatten().map(String::as_str).chain([lo.as_str(), hi.as_str()]).collect();
        let sql = format!(
            "SELECT {}",
            strings.iter().map(|s| format!("{}::text", quote_string(s))).collect::<Vec<_>>().join(", ")
        );
        let row = db.client.query_one(sql.as_str(), &[]).await.unwrap_or_else(|e| panic!("{sql:?}: {e}"));
        for (i, s) in strings.iter().enumerate() {
            let got: String = row.get(i);
            assert_eq!(&got, s, "quote_string round trip via {sql:?}");
        }

        // push_array_element: a one-dimensional text[] with NULLs.
        let mut lit = String::from("{");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                lit.push(',');
            }
            match item {
                Some(s) => push_array_element(&mut lit, s),
                None => lit.push_str("NULL"),
            }
        }
        lit.push('}');
        let row = db.client.query_one(&db.array, &[&lit]).await.unwrap_or_else(|e| panic!("{lit:?}: {e}"));
        let got: Vec<Option<String>> = row.get(0);
        assert_eq!(got, items, "array literal {lit:?}");

        // push_range_bound: an inclusive range whose bounds are in byte order.
        let (a, b) = if lo.as_bytes() <= hi.as_bytes() { (&lo, &hi) } else { (&hi, &lo) };
        let mut lit = String::from("[");
        push_range_bound(&mut lit, a);
        lit.push(',');
        push_range_bound(&mut lit, b);
        lit.push(']');
        let row = db.client.query_one(&db.range, &[&lit]).await.unwrap_or_else(|e| panic!("{lit:?}: {e}"));
        let (l, u): (Option<String>, Option<String>) = (row.get(0), row.get(1));
        assert_eq!((l.as_ref(), u.as_ref()), (Some(a), Some(b)), "range literal {lit:?}");
        assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3), "range literal {lit:?} lost inclusivity");

        // push_hstore_item: distinct keys (hstore keeps one of duplicates, unspecified which).
        let mut want: HashMap<&str, Option<&str>> = HashMap::new();
        let mut lit = String::new();
        for (k, v) in &pairs {
            if want.contains_key(k.as_str()) {
                continue;
            }
            want.insert(k, v.as_deref());
            push_hstore_item(&mut lit, k, v.as_deref());
        }
        let row = db.client.query_one(&db.hstore, &[&lit]).await.unwrap_or_else(|e| panic!("{lit:?}: {e}"));
        let keys: Vec<String> = row.get(0);
        let vals: Vec<Option<String>> = row.get(1);
        let got: HashMap<&str, Option<&str>> = keys.iter().map(String::as_str).zip(vals.iter().map(|v| v.as_deref())).collect();
        assert_eq!(keys.len(), want.len(), "hstore literal {lit:?}");
        assert_eq!(got, want, "hstore literal {lit:?}");
    });
});
