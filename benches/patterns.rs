//! Pattern index benchmarks (`router::patterns`): `best` among 10,000 prefix patterns and
//! among 10,000 wildcard patterns, each for a URI that matches and one that walks deep and
//! misses, and `for_each_match` among the same wildcard patterns for a URI matching two.
//!
//! Prefix patterns are `com.example.service{s}.method{m}` (s < 100, m < 100). Wildcard
//! patterns are `com.example{s}..method{m}` and `com.example{s}.service{m}.` (s < 50,
//! m < 100): a URI like `com.example17.service42.method42` matches one of each, and the second
//! wins (concrete at the first difference).
//!
//! Run briefly: `cargo bench --bench patterns -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use wampring::router::patterns::{PatternIndex, PatternKind};

fn prefix_index() -> PatternIndex<u32> {
    let mut index = PatternIndex::new();
    for i in 0..10_000u32 {
        let (service, method) = (i / 100, i % 100);
        index.insert_prefix(&format!("com.example.service{service}.method{method}"), i);
    }
    index
}

fn wildcard_index() -> PatternIndex<u32> {
    let mut index = PatternIndex::new();
    for i in 0..5_000u32 {
        let (example, m) = (i / 100, i % 100);
        index.insert_wildcard(&format!("com.example{example}..method{m}"), 2 * i);
        index.insert_wildcard(&format!("com.example{example}.service{m}."), 2 * i + 1);
    }
    index
}

fn best(c: &mut Criterion) {
    let mut group = c.benchmark_group("patterns_best");

    let index = prefix_index();
    assert_eq!(index.len(), 10_000);
    let hit = "com.example.service17.method42.get";
    let miss = "com.example.service17.other42";
    assert_eq!(index.best(hit), Some((1742, PatternKind::Prefix)));
    assert_eq!(index.best(miss), None);
    group.bench_function("prefix_hit", |b| b.iter(|| index.best(black_box(hit))));
    group.bench_function("prefix_miss", |b| b.iter(|| index.best(black_box(miss))));

    let index = wildcard_index();
    assert_eq!(index.len(), 10_000);
    let hit = "com.example17.service42.method42";
    let miss = "com.example17.service420.other42";
    assert_eq!(index.best(hit), Some((2 * 1742 + 1, PatternKind::Wildcard)));
    assert_eq!(index.best(miss), None);
    group.bench_function("wildcard_hit", |b| b.iter(|| index.best(black_box(hit))));
    group.bench_function("wildcard_miss", |b| b.iter(|| index.best(black_box(miss))));
    group.finish();
}

fn for_each_match(c: &mut Criterion) {
    let index = wildcard_index();
    let uri = "com.example17.service42.method42";
    let mut matched = Vec::with_capacity(4);
    index.for_each_match(uri, |value| matched.push(value));
    assert_eq!(matched, [2 * 1742 + 1, 2 * 1742]);
    c.bench_function("patterns_for_each_match/wildcard_2_of_10000", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            index.for_each_match(black_box(uri), |value| sum += value);
            sum
        })
    });
}

criterion_group!(benches, best, for_each_match);
criterion_main!(benches);
