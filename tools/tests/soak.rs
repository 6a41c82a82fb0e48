//! History that does not grow forever, measured: two real banks under a steady load for 45 s
//! with compaction on. Package history (origin records, participant legs and rows) stays
//! bounded, and the processes' resident memory levels off: the last third of the run grows
//! far less than the first. (Only statements grow, by one entry per committed leg.)

use tools::soak::{soak, SoakOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_history_and_memory_level_off_under_a_steady_load() {
    let o = SoakOptions { seconds: 45, ..Default::default() };
    let r = soak(tools::cluster::node_bin(), &o).await;
    eprintln!("{}", r.summary());
    assert!(r.committed > 1_000, "a steady load: {}", r.summary());
    let (h1, h3) = r.history_thirds();
    // Compacted 3 s after a package is signed: the rows level off at the load times that.
    assert!(h3 <= h1 / 4 + 500, "package history still grows: {h1} rows in the first third, {h3} in the last\n{}", r.summary());
    let peak = r.samples.iter().map(|s| s.history_rows).max().unwrap_or(0);
    assert!(peak < r.packages / 2, "history holds {peak} rows for {} packages: not compacted\n{}", r.packages, r.summary());
    let (m1, m3) = r.rss_thirds();
    assert!(m3 <= m1 / 2 + 4_000, "memory still grows: {m1} kB in the first third, {m3} kB in the last\n{}", r.summary());
    let journal = r.samples.last().unwrap().journal_rows;
    assert!(journal >= 2 * r.committed, "every committed transfer is two statement entries: {journal} for {}", r.committed);
}
