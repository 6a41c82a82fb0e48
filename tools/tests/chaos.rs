//! A short chaos run on real processes (the long one is `make chaos`): kill -9, restart and
//! SIGSTOP/SIGCONT random banks, and cut their links through their proxies (isolated, losing
//! replies, slow and lossy), under load; then check every promise made to clients.

use std::time::Duration;
use tools::cluster::{node_bin, Cluster, TEST_TIMING};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_pause_and_cut_banks_under_load() {
    let c = Cluster::start_proxied(4, node_bin(), TEST_TIMING).await;
    let addrs = c.addrs.clone();
    let r = tools::bench::chaos(c, Duration::from_secs(12), 6, 7, |m| eprintln!("chaos: {m}")).await;
    eprintln!("{r:?}");
    // The picture of the run: both charts, every fault shaded on each.
    let page = tools::chaos_picture::html("chaos test", &r.faults, &r.answers, &addrs);
    assert_eq!(r.faults.len(), r.kills + r.pauses + r.network_faults, "every fault has its span");
    assert_eq!(page.matches("<svg").count(), 2);
    for f in &r.faults {
        assert!(f.to_s > f.from_s && page.contains(&format!("{} b{}", f.kind, f.bank)), "{f:?}");
    }
    assert_eq!(r.answers.len(), r.packages_sent, "every answer is in the picture");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/picture");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("chaos.html"), &page).unwrap();
    in_a_browser(&dir.join("chaos.html"), r.faults.len());
    assert!(r.problems.is_empty(), "chaos found problems: {:#?}", r.problems);
    assert!(r.kills + r.pauses + r.network_faults >= 5, "faults were injected: {r:?}");
    assert!(r.committed > 0, "packages went through despite the faults: {r:?}");
    assert!(r.acknowledged_checked > 0);
}

/// The picture in headless Chromium (CI installs it and sets REQUIRE_BROWSER=1): both charts
/// rendered, with every fault's label, and no error in the browser's log.
fn in_a_browser(page: &std::path::Path, faults: usize) {
    let browser = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(browser) = browser else {
        assert!(std::env::var("REQUIRE_BROWSER").is_err(), "REQUIRE_BROWSER is set but no chromium is installed");
        eprintln!("no chromium here: the browser check of the chaos picture is skipped (CI runs it)");
        return;
    };
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let o = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(&url)
        .output()
        .expect("run chromium");
    let (dom, log) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{log}");
    assert!(!log.contains("Uncaught") && !log.contains(":ERROR:CONSOLE"), "{log}");
    assert_eq!(dom.matches("<svg").count(), 2, "both charts rendered");
    assert!(dom.matches("</text>").count() >= 2 * faults, "every fault labelled on both charts");
}
