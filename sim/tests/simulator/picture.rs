//! The picture of a run (`sim SCENARIO --html FILE`): the same file for the same seed, and
//! it draws what happened: a lane per bank, an arrow per token pass taken, a band per fault,
//! a span per package, a red line per broken invariant.

use crate::scenario;
use node::node::PlantedBug;
use sim::run;

#[test]
fn the_picture_of_bank_crash_draws_every_pass_and_fault_and_is_the_same_every_time() {
    let s = scenario("bank_crash");
    let a = run(&s, PlantedBug::None);
    let b = run(&s, PlantedBug::None);
    let (pa, pb) = (a.html("bank_crash"), b.html("bank_crash"));
    assert!(pa == pb, "same scenario and seed, same file");
    let accepted = a.trace.iter().filter(|l| l.contains(" token_accepted ")).count();
    assert!(accepted > 100, "{accepted}");
    assert_eq!(pa.matches("class=\"pass\"").count(), accepted, "an arrow per token pass taken");
    assert_eq!(pa.matches("class=\"lane\"").count(), s.banks, "a lane per bank");
    assert_eq!(pa.matches("class=\"fault crash\"").count(), a.report.faults.get("crash").copied().unwrap_or(0) as usize, "a band per crash");
    let accepted_packages = a.trace.iter().filter(|l| l.contains(" package_accepted ")).count();
    assert_eq!(pa.matches("class=\"package ").count(), accepted_packages, "a span per package accepted");
    assert_eq!(pa.matches("class=\"violation\"").count(), 0);
    assert!(!pa.contains("src=") && !pa.contains("href="), "nothing fetched from elsewhere");
}

#[test]
fn a_broken_invariant_is_drawn_where_it_broke() {
    let mut s = scenario("bank_crash");
    s.seed = 1;
    let out = run(&s, PlantedBug::SkipRefund);
    assert!(!out.passed());
    let page = out.html("bank_crash with a planted bug");
    assert_eq!(page.matches("class=\"violation\"").count(), out.violations.len());
    assert!(page.contains("VIOLATION at "), "hovering it says what broke");
}

/// In a real browser (headless Chromium, Debian's `chromium`): the page loads without script
/// errors and has its lanes and arrows; a screenshot goes to target/ for review. CI sets
/// REQUIRE_BROWSER=1 (and installs chromium); elsewhere, without a browser, it says so and
/// passes.
#[test]
fn the_picture_renders_in_a_real_browser_without_script_errors() {
    let browser = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(browser) = browser else {
        assert!(std::env::var("REQUIRE_BROWSER").is_err(), "REQUIRE_BROWSER is set but no chromium is installed");
        eprintln!("no chromium here: the browser check of the picture is skipped (CI runs it)");
        return;
    };
    let s = scenario("bank_crash");
    let out = run(&s, PlantedBug::None);
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/picture");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("bank_crash.html");
    std::fs::write(&page, out.html("bank_crash (seed 42)")).unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let headless = |extra: &[&str]| {
        let mut c = std::process::Command::new(browser);
        c.args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000"]);
        c.args(extra).arg(&url);
        c.output().expect("run chromium")
    };
    // The page as the browser built it, after its script ran.
    let o = headless(&["--dump-dom"]);
    let (dom, log) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{log}");
    for bad in ["Uncaught", "SyntaxError", "ReferenceError", "TypeError"] {
        assert!(!log.contains(bad), "a script error in the page: {log}");
    }
    assert_eq!(dom.matches("class=\"lane\"").count(), s.banks, "lanes in the rendered page");
    let passes = out.trace.iter().filter(|l| l.contains(" token_accepted ")).count();
    assert_eq!(dom.matches("class=\"pass\"").count(), passes, "an arrow per pass in the rendered page");
    assert!(dom.contains("class=\"fault crash\""), "the crash band");
    let shot = dir.join("bank_crash.png");
    let o = headless(&["--window-size=1600,420", &format!("--screenshot={}", shot.display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot of the picture");
    // The copy kept for review (README shows it); a browser's pixels differ between
    // machines, so it is written on request, not compared.
    if std::env::var_os("UPDATE_PICTURE").is_some() {
        let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/bank_crash.png");
        std::fs::write(&kept, &png).unwrap();
        eprintln!("wrote {}", kept.display());
    }
}
