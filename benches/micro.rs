//! Rust-only micro-benchmarks (criterion): placeholder rewriting, binary decoding per type
//! family, statement fingerprints (N+1 detection), and a 100k-row fetch through the
//! driver's pool with no Python objects, which is the floor under the Python-level numbers
//! of `benches/run.py`.
//!
//! Run through `benches/run.py --rust` (it sets PYO3_PYTHON / LD_LIBRARY_PATH / PYTHONPATH
//! the way `make test-rust` does, since the crate links libpython under cargo), or by hand
//! with those set: `cargo bench --bench micro [-- FILTER]`. The fetch reads DATABASE_URL
//! (default postgresql://postgres@127.0.0.1:5432/postgres) and BENCH_DB (default
//! django_rustpg_bench, seeded by run.py); without that database it generates rows.

use _native::codec::{datetime, net, numeric, read::Reader, text};
use _native::pool::{pool_for, ConnectSpec, PoolSpec};
use _native::runtime;
use _native::sql::placeholders::scan;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use postgres_types::{ToSql, Type};
use std::str::FromStr;
use std::time::Duration;

// ---------------------------------------------------------------- placeholders

fn django_select(columns: usize, params: usize) -> String {
    let cols: Vec<String> = (0..columns).map(|i| format!("\"shop_book\".\"col_{i}\"")).collect();
    let conds: Vec<String> = (0..params).map(|i| format!("\"shop_book\".\"f{i}\" = %s")).collect();
    format!("SELECT {} FROM \"shop_book\" WHERE {} ORDER BY \"shop_book\".\"id\" ASC LIMIT 21", cols.join(", "), conds.join(" AND "))
}

fn bulk_insert(rows: usize, fields: usize) -> String {
    let row = format!("({})", vec!["%s"; fields].join(", "));
    format!("INSERT INTO \"shop_order\" (\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\") VALUES {} RETURNING \"shop_order\".\"id\"", vec![row; rows].join(", "))
}

fn placeholders(c: &mut Criterion) {
    let mut g = c.benchmark_group("placeholders");
    let cases = [
        ("get_by_pk", django_select(14, 1)),
        ("filter_3_params", django_select(14, 3)),
        ("named", "SELECT * FROM t WHERE a = %(a)s AND b = %(b)s OR a > %(a)s AND c LIKE '%%' || %(c)s".to_string()),
        ("literals_comments", "SELECT 'it''s %s', E'\\'%s', $x$%s$x$, \"q%s\" /* %s */ FROM t -- %s\nWHERE a = %s".to_string()),
        ("bulk_insert_1000x7", bulk_insert(1000, 7)),
    ];
    for (name, sql) in &cases {
        g.throughput(Throughput::Bytes(sql.len() as u64));
        g.bench_with_input(BenchmarkId::new("scan_render", name), sql, |b, sql| {
            b.iter(|| {
                let t = scan(black_box(sql), true).unwrap();
                let n: Vec<usize> = (1..=t.slot_count()).collect();
                black_box(t.render(&n))
            })
        });
    }
    g.bench_function("scan_no_params", |b| b.iter(|| black_box(scan(black_box(&cases[0].1), false).unwrap())));
    g.finish();
}

// ---------------------------------------------------------------- codec

fn numeric_bytes(weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [digits.len() as i16, weight] {
        v.extend(x.to_be_bytes());
    }
    v.extend(sign.to_be_bytes());
    v.extend(dscale.to_be_bytes());
    for d in digits {
        v.extend(d.to_be_bytes());
    }
    v
}

fn int4_array(values: &[i32]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [1i32, 0, 23, values.len() as i32, 1] {
        v.extend(x.to_be_bytes()); // ndim, has_null, elem oid, dim length, lower bound
    }
    for x in values {
        v.extend(4i32.to_be_bytes());
        v.extend(x.to_be_bytes());
    }
    v
}

/// Walks a 1-D binary array the way the driver does: header, then length-prefixed elements.
fn sum_int4_array(raw: &[u8]) -> i64 {
    let mut r = Reader::new(raw);
    let ndim = r.i32().unwrap();
    let _has_null = r.i32().unwrap();
    let _oid = r.u32().unwrap();
    let mut n = 1usize;
    for _ in 0..ndim {
        n *= r.i32().unwrap() as usize;
        let _lower = r.i32().unwrap();
    }
    (0..n).map(|_| r.value().unwrap().map_or(0, |b| i32::from_be_bytes(b.try_into().unwrap()) as i64)).sum()
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let num_small = numeric_bytes(0, 0x0000, 2, &[12, 3400]); // 12.34
    let num_large = numeric_bytes(4, 0x4000, 8, &[12, 3456, 7890, 1234, 5678, 9012, 3456]); // 20+ digits
    g.bench_function("numeric/12.34", |b| b.iter(|| numeric::to_text(black_box(&num_small)).unwrap()));
    g.bench_function("numeric/-22_digits", |b| b.iter(|| numeric::to_text(black_box(&num_large)).unwrap()));

    let date = 8_500i32.to_be_bytes();
    let ts = 700_000_000_123_456i64.to_be_bytes();
    let time = 45_296_000_001i64.to_be_bytes();
    let mut timetz = time.to_vec();
    timetz.extend((-7200i32).to_be_bytes());
    let mut interval = 3_723_000_004i64.to_be_bytes().to_vec();
    interval.extend(3i32.to_be_bytes());
    interval.extend(14i32.to_be_bytes());
    g.bench_function("date", |b| b.iter(|| datetime::decode_date(black_box(&date)).unwrap()));
    g.bench_function("timestamp", |b| {
        b.iter(|| datetime::decode_timestamp_micros(datetime::timestamp_micros(black_box(&ts)).unwrap()).unwrap())
    });
    g.bench_function("time", |b| b.iter(|| datetime::decode_time(black_box(&time)).unwrap()));
    g.bench_function("timetz", |b| b.iter(|| datetime::decode_timetz(black_box(&timetz)).unwrap()));
    g.bench_function("interval", |b| b.iter(|| datetime::decode_interval(black_box(&interval)).unwrap().total_days()));

    let inet4 = [2u8, 24, 0, 4, 192, 168, 1, 7];
    let mut inet6 = vec![3u8, 128, 0, 16];
    inet6.extend("2001:db8::8a2e:370:7334".parse::<std::net::Ipv6Addr>().unwrap().octets());
    g.bench_function("inet/v4_prefix", |b| b.iter(|| net::inet_to_text(black_box(&inet4)).unwrap()));
    g.bench_function("inet/v6", |b| b.iter(|| net::inet_to_text(black_box(&inet6)).unwrap()));
    g.bench_function("macaddr", |b| b.iter(|| net::mac_to_text(black_box(&[8, 0, 0x2b, 1, 2, 3])).unwrap()));

    let mut bits = 64i32.to_be_bytes().to_vec();
    bits.extend([0xA5u8; 8]);
    let money = 123_456_789i64.to_be_bytes();
    let mut tsv = 3i32.to_be_bytes().to_vec();
    for (word, pos) in [("fat", 2u16), ("cat", 3), ("it's", 0)] {
        tsv.extend(word.as_bytes());
        tsv.push(0);
        tsv.extend(u16::from(pos > 0).to_be_bytes()); // number of positions
        if pos > 0 {
            tsv.extend((pos | 0xC000).to_be_bytes());
        }
    }
    g.bench_function("bit/64", |b| b.iter(|| text::bits_to_text(black_box(&bits)).unwrap()));
    g.bench_function("money", |b| b.iter(|| text::money_to_text(black_box(&money)).unwrap()));
    g.bench_function("tsvector/3_lexemes", |b| b.iter(|| text::tsvector_to_text(black_box(&tsv)).unwrap()));

    let arr = int4_array(&(0..100).collect::<Vec<_>>());
    g.bench_function("int4_array/100", |b| b.iter(|| sum_int4_array(black_box(&arr))));
    g.finish();
}

// ---------------------------------------------------------------- fingerprint

fn fingerprints(c: &mut Criterion) {
    use _native::sql::fingerprint::{cached, fingerprint};
    let dollar = |sql: &str| -> String {
        let t = scan(sql, true).unwrap();
        t.render(&(1..=t.slot_count()).collect::<Vec<_>>())
    };
    let in_list = format!("SELECT \"shop_label\".\"id\" FROM \"shop_label\" WHERE \"shop_label\".\"id\" IN ({})",
                          vec!["%s"; 1000].join(", "));
    let cases = [
        ("get_by_pk", dollar(&django_select(14, 1))),
        ("in_list_1000", dollar(&in_list)),
        ("bulk_insert_100x7", dollar(&bulk_insert(100, 7))),
        ("unparsable", "SELEC 1 FROMM t WHERE x = $1 /* tag='a' */".to_string()),
    ];
    let mut g = c.benchmark_group("fingerprint");
    for (name, sql) in &cases {
        g.bench_with_input(BenchmarkId::new("parse", name), sql, |b, sql| b.iter(|| fingerprint(black_box(sql))));
    }
    // What the N+1 detector pays per statement once a shape has been seen.
    g.bench_function("cached_hit/get_by_pk", |b| b.iter(|| cached(black_box(&cases[0].1))));
    g.finish();
}

// ---------------------------------------------------------------- fetch through the pool

use _native::cursor::Raw;

const BENCH_SQL: &str = "SELECT id, book_id, rating, created_at, body FROM shop_review ORDER BY id";
const GENERATED_SQL: &str = "SELECT g::int8, (g % 20000)::int8, (g % 5)::int2, \
    timestamptz '2015-01-01' + g * interval '1 second', repeat('word ', 12) FROM generate_series(1, 100000) g";

fn connect_spec(dbname: &str) -> ConnectSpec {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let config = tokio_postgres::Config::from_str(&url).expect("DATABASE_URL is not a valid PostgreSQL URL");
    let host = config.get_hosts().first().map(|h| match h {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    });
    ConnectSpec {
        host,
        port: config.get_ports().first().map(|p| p.to_string()),
        user: config.get_user().map(str::to_string),
        password: config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
        dbname: Some(dbname.to_string()),
        // The driver's default, as the Python-level runs use it.
        sslmode: std::env::var("PGSSLMODE").unwrap_or_else(|_| "prefer".into()),
        ..Default::default()
    }
}

/// Runs the query through a pooled session; `decode` also turns every value into a Rust
/// value (ints, timestamp fields, UTF-8 text), otherwise only the raw bytes are touched.
async fn fetch(pool: &_native::pool::PgPool, sql: &str, decode: bool) -> usize {
    use futures_util::StreamExt;
    let session = pool.get().await.expect("pool checkout");
    let stream = session
        .client
        .query_typed_raw(sql, std::iter::empty::<(&(dyn ToSql + Sync), Type)>())
        .await
        .expect("query");
    let mut stream = std::pin::pin!(stream);
    let (mut rows, mut acc) = (0usize, 0i64);
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        for i in 0..row.len() {
            let Raw(v) = row.get::<_, Raw>(i);
            let Some(v) = v else { continue };
            acc += if !decode {
                v.len() as i64
            } else {
                match v.len() {
                    2 => i16::from_be_bytes(v.try_into().unwrap()) as i64,
                    8 if i == 3 => datetime::decode_timestamp_micros(datetime::timestamp_micros(v).unwrap()).unwrap().0.day as i64,
                    8 => i64::from_be_bytes(v.try_into().unwrap()),
                    4 => i32::from_be_bytes(v.try_into().unwrap()) as i64,
                    _ => std::str::from_utf8(v).unwrap().len() as i64,
                }
            };
        }
        rows += 1;
    }
    black_box(acc);
    rows
}

fn pool_fetch(c: &mut Criterion) {
    let rt = runtime::get();
    let db = std::env::var("BENCH_DB").unwrap_or_else(|_| "django_rustpg_bench".into());
    let mut target = None;
    for (dbname, sql) in [(db.as_str(), BENCH_SQL), ("postgres", GENERATED_SQL)] {
        let pool = pool_for(&connect_spec(dbname), &PoolSpec::default()).expect("pool");
        let ok = rt.block_on(async { pool.get().await.map(|s| !s.client.is_closed()).unwrap_or(false) });
        if ok && rt.block_on(fetch(&pool, sql, false)) == 100_000 {
            target = Some((pool, sql));
            break;
        }
        eprintln!("pool_fetch: database {dbname} unavailable or not seeded; trying generated rows");
    }
    let Some((pool, sql)) = target else {
        eprintln!("pool_fetch: skipped, no server (set DATABASE_URL)");
        return;
    };
    let mut g = c.benchmark_group("pool_fetch_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).throughput(Throughput::Elements(100_000));
    for decode in [false, true] {
        g.bench_function(if decode { "decoded" } else { "raw" }, |b| {
            b.iter(|| assert_eq!(rt.block_on(fetch(&pool, sql, decode)), 100_000))
        });
    }
    g.finish();
}

criterion_group!(benches, placeholders, codec, fingerprints, pool_fetch);
criterion_main!(benches);
