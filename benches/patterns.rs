//! Pattern index benchmarks (`router::patterns`): `best` among 10,000 prefix patterns and
//! among 10,000 wildcard patterns, each for a URI that matches and one that walks deep and
//! misses; `for_each_match` among the same wildcard patterns for a URI matching two, and among
//! 5,000 prefix plus 5,000 wildcard patterns (the subscriptions a PUBLISH meets) for a URI
//! matching three and for one matching none.
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

    // As a PUBLISH meets the subscriptions of a realm: 5,000 prefix and 5,000 wildcard
    // patterns, of which the URI matches one prefix and two wildcards.
    let mut mixed = PatternIndex::new();
    for i in 0..5_000u32 {
        let (example, m) = (i / 100, i % 100);
        mixed.insert_prefix(&format!("com.example{example}.service{m}.method"), i);
    }
    for i in 0..2_500u32 {
        let (example, m) = (i / 50, i % 50);
        mixed.insert_wildcard(&format!("com.example{example}..method{m}"), 10_000 + 2 * i);
        mixed.insert_wildcard(&format!("com.example{example}.service{m}."), 10_001 + 2 * i);
    }
    assert_eq!(mixed.len(), 10_000);
    let uri = "com.example17.service42.method42";
    let mut matched = Vec::new();
    mixed.for_each_match(uri, |value| matched.push(value));
    matched.sort_unstable();
    assert_eq!(matched, [1742, 11_784, 11_785]);
    let miss = "com.example17.other42.x";
    let mut none = 0;
    mixed.for_each_match(miss, |_| none += 1);
    assert_eq!(none, 0);
    let mut group = c.benchmark_group("patterns_for_each_match");
    group.bench_function("mixed_3_of_10000", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            mixed.for_each_match(black_box(uri), |value| sum += value);
            sum
        })
    });
    group.bench_function("mixed_none_of_10000", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            mixed.for_each_match(black_box(miss), |value| sum += value);
            sum
        })
    });
    group.finish();
}

criterion_group!(benches, best, for_each_match);
criterion_main!(benches);
