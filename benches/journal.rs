//! Journal writer benches: lifecycle events per second through the single writer thread (queued
//! without waiting, then one flush, so the writer batches them), and the latency of one durable
//! write (the order intent's path: queue, commit with `synchronous=FULL`, acknowledgement).
//!
//! Results and the machine they ran on are recorded in `benches/BENCHMARKS.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::journal::{Journal, JournalWriter, LifecycleEventRecord, LifecycleKind, WriterConfig};
use serde_json::json;

const EVENTS: u64 = 2000;

fn event(n: u64) -> LifecycleEventRecord {
    LifecycleEventRecord {
        at_ms: 1_780_000_000_000 + n as i64,
        position_id: format!("p-{}", n % 100),
        kind: LifecycleKind::PriceUpdated,
        payload: json!({"mark": "64500.30", "risk": 0.42, "n": n}),
    }
}

fn writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (journal, _) = Journal::open(&dir.path().join("bench.sqlite")).expect("journal");
    let writer = JournalWriter::spawn(journal, WriterConfig::default()).expect("writer");
    let handle = writer.handle();

    let mut group = c.benchmark_group("journal_writer");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("2000 lifecycle events queued, then flushed", |b| {
        b.iter(|| {
            for n in 0..EVENTS {
                handle.write_blocking(event(n)).expect("queued");
            }
            handle.flush_blocking().expect("flushed");
        });
    });
    group.finish();

    let mut group = c.benchmark_group("journal_durable");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one durable write (queue, commit, ack)", |b| {
        b.iter(|| handle.write_durable_blocking(event(7)).expect("durable"));
    });
    group.finish();
    writer.close();
}

criterion_group!(benches, writer);
criterion_main!(benches);
