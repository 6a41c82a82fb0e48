//! A picture of a run: one self-contained HTML file (`sim SCENARIO --html FILE`, and beside
//! every failing fuzz seed) with one lane per bank on a shared simulated-time axis. Token
//! passes are arrows between lanes coloured by epoch; created tokens, and stale or duplicate
//! ones dropped, are marked; faults are shaded bands over the lanes they hit; packages are
//! spans at their origin from acceptance to decision; finished legs are ticks on their banks;
//! a broken invariant is a red line across every lane. Hovering a mark shows its details
//! (SVG titles: no script needed); the wheel zooms the time axis and dragging pans it (a few
//! lines of script, inline). Nothing is fetched: no fonts, styles or scripts from elsewhere.
//! Same scenario and seed, same file, byte for byte: everything is drawn from the run's
//! recorded marks in order, with fixed number formats.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Mark {
    /// `to` took the token of epoch `gen@creator` at `hop`, passed by `from`.
    Pass { t: Duration, from: Option<usize>, to: usize, gen: u64, epoch: String, hop: u64 },
    Created { t: Duration, bank: usize, gen: u64, epoch: String },
    /// A token dropped at `bank`: stale, duplicate, replaced or superseded.
    Dropped { t: Duration, bank: usize, kind: String, detail: String },
    Accepted { t: Duration, bank: usize, key: String },
    Decided { t: Duration, bank: usize, key: String, status: String },
    /// Legs finished at `bank` (a participant applying an outcome).
    Legs { t: Duration, bank: usize, detail: String },
    Violation { t: Duration, what: String },
}

/// A fault over time: on one bank's lane, or on every lane (`bank: None`).
#[derive(Clone, Debug)]
pub struct Band {
    pub bank: Option<usize>,
    pub kind: String,
    pub from: Duration,
    pub to: Option<Duration>,
    pub label: String,
}

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub marks: Vec<Mark>,
    pub bands: Vec<Band>,
    /// Bands begun and not yet ended, by (bank, kind): their index in `bands`.
    open: BTreeMap<(Option<usize>, String), usize>,
}

impl Timeline {
    pub fn mark(&mut self, m: Mark) {
        self.marks.push(m);
    }

    /// A fault begins at `t` on `bank` (every bank: None); it lasts `for_` if known, else
    /// until `end` is called for the same bank and kind.
    pub fn begin(&mut self, t: Duration, bank: Option<usize>, kind: &str, label: String, for_: Option<Duration>) {
        let band = Band { bank, kind: kind.to_string(), from: t, to: for_.map(|d| t + d), label };
        if for_.is_none() {
            self.open.insert((bank, kind.to_string()), self.bands.len());
        }
        self.bands.push(band);
    }

    /// An instant fault (a clock skewed, a token copied).
    pub fn instant(&mut self, t: Duration, bank: Option<usize>, kind: &str, label: String) {
        self.begin(t, bank, kind, label, Some(Duration::ZERO));
    }

    pub fn end(&mut self, t: Duration, bank: Option<usize>, kind: &str) {
        if let Some(i) = self.open.remove(&(bank, kind.to_string())) {
            self.bands[i].to = Some(t);
        }
    }

    /// When the token moved: one span per epoch and stretch of passes, split wherever no pass
    /// of it came for longer than `gap`: (generation, epoch, from, to, passes), in order.
    pub fn token_spans(&self, gap: Duration) -> Vec<(u64, String, Duration, Duration, usize)> {
        let mut out: Vec<(u64, String, Duration, Duration, usize)> = Vec::new();
        // The span each epoch is extending: its index in `out`.
        let mut open: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.marks {
            let (t, gen, epoch, pass) = match m {
                Mark::Created { t, gen, epoch, .. } => (*t, *gen, epoch, false),
                Mark::Pass { t, gen, epoch, .. } => (*t, *gen, epoch, true),
                _ => continue,
            };
            match open.get(epoch.as_str()).map(|&i| &mut out[i]) {
                Some(e) if t <= e.3 + gap => {
                    e.3 = e.3.max(t);
                    e.4 += pass as usize;
                }
                _ => {
                    open.insert(epoch, out.len());
                    out.push((gen, epoch.clone(), t, t, pass as usize));
                }
            }
        }
        out
    }

    /// The packages a broken invariant names (its message quotes their keys): drawn apart, so
    /// a failing seed's picture shows which packages to look at.
    pub fn implicated(&self) -> std::collections::BTreeSet<&str> {
        let said: Vec<&str> = self.marks.iter().filter_map(|m| if let Mark::Violation { what, .. } = m { Some(what.as_str()) } else { None }).collect();
        self.marks
            .iter()
            .filter_map(|m| if let Mark::Accepted { key, .. } = m { Some(key.as_str()) } else { None })
            // Checks name a package by its key (`id@origin`) or by its id alone.
            .filter(|k| said.iter().any(|w| names_key(w, k) || k.split_once('@').is_some_and(|(id, _)| names_key(w, id))))
            .collect()
    }

    pub fn passes(&self) -> usize {
        self.marks.iter().filter(|m| matches!(m, Mark::Pass { .. })).count()
    }

    /// The page: `title` on top, `names` the lanes, `end` the end of the time axis.
    pub fn html(&self, title: &str, names: &[String], end: Duration) -> String {
        const LEFT: f64 = 90.0;
        const WIDTH: f64 = 1400.0;
        const LANE: f64 = 56.0;
        const TOP: f64 = 30.0;
        let end_s = end.as_secs_f64().max(0.001);
        let x = |t: Duration| t.as_secs_f64() / end_s * WIDTH;
        let y = |bank: usize| TOP + LANE * bank as f64 + LANE / 2.0;
        // Below the lanes: the token strip (which epoch moved when), then room for the axis.
        let strip_y = TOP + LANE * names.len() as f64 + 4.0;
        let height = strip_y + STRIP + 20.0;
        let mut s = String::new();
        let mut decided: BTreeMap<String, (Duration, String)> = BTreeMap::new();
        for m in &self.marks {
            if let Mark::Decided { t, key, status, .. } = m {
                decided.entry(key.clone()).or_insert((*t, status.clone()));
            }
        }
        let implicated = self.implicated();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{CSS}</style></head><body>\n<h1>{t}</h1>\n<p class=\"help\">Wheel: zoom the time axis. Drag: pan. Double-click: the whole run. Hover a mark for its details. {legend}</p>\n",
            t = esc(title),
            legend = LEGEND
        );
        let _ = write!(s, "<svg id=\"run\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{height:.0}\" data-end-s=\"{end_s:.6}\">\n", w = LEFT + WIDTH + 20.0);
        // Lanes and their names (outside the zoomed group: they stay put).
        let _ = writeln!(s, "<text x=\"6\" y=\"{:.1}\">token</text>", strip_y + STRIP - 1.0);
        for (i, n) in names.iter().enumerate() {
            let _ = writeln!(s, "<g class=\"lane\" data-bank=\"{}\"><rect x=\"0\" y=\"{:.1}\" width=\"{:.0}\" height=\"{LANE:.0}\" class=\"lane-bg{}\"/><text x=\"6\" y=\"{:.1}\">{}</text></g>", esc(n), TOP + LANE * i as f64, LEFT + WIDTH + 20.0, i % 2, y(i) + 4.0, esc(n));
        }
        let _ = writeln!(s, "<svg x=\"{LEFT:.0}\" y=\"0\" width=\"{WIDTH:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH:.0} {height:.0}\" preserveAspectRatio=\"none\" id=\"plot\" overflow=\"hidden\">");
        let _ = writeln!(s, "<defs><marker id=\"arrow\" viewBox=\"0 0 6 6\" refX=\"6\" refY=\"3\" markerWidth=\"5\" markerHeight=\"5\" orient=\"auto\"><path d=\"M0,0 L6,3 L0,6 z\" fill=\"context-stroke\"/></marker></defs>");
        let _ = writeln!(s, "<g id=\"zoom\">");
        // Seconds on the axis.
        let step = tick_step(end_s);
        let mut k = 0.0;
        while k <= end_s + 1e-9 {
            let xx = k / end_s * WIDTH;
            let _ = writeln!(s, "<line class=\"tick\" x1=\"{xx:.2}\" y1=\"{TOP:.0}\" x2=\"{xx:.2}\" y2=\"{:.0}\"/><text class=\"tick-label\" x=\"{xx:.2}\" y=\"{:.0}\">{k:.1} s</text>", strip_y + STRIP, TOP - 8.0);
            k += step;
        }
        // Faults under everything else.
        for b in &self.bands {
            let to = b.to.unwrap_or(end);
            let w = (x(to) - x(b.from)).max(1.5);
            let (y0, h) = match b.bank {
                Some(i) => (TOP + LANE * i as f64, LANE),
                None => (TOP, LANE * names.len() as f64),
            };
            let until = b.to.map_or("the end".to_string(), secs);
            let _ = writeln!(s, "<rect class=\"fault {k}\" x=\"{:.2}\" y=\"{y0:.1}\" width=\"{w:.2}\" height=\"{h:.1}\"><title>{k}: {} ({} to {until})</title></rect>", x(b.from), esc(&b.label), secs(b.from), k = esc(&b.kind));
        }
        // Packages at their origins, decided or not.
        let mut row: BTreeMap<usize, usize> = BTreeMap::new();
        for m in &self.marks {
            if let Mark::Accepted { t, bank, key } = m {
                let (to, status) = decided.get(key).cloned().unwrap_or((end, "pending".to_string()));
                let r = row.entry(*bank).or_default();
                let yy = y(*bank) + 6.0 + (*r % 4) as f64 * 4.0;
                *r += 1;
                let (class, named) = if implicated.contains(key.as_str()) { (" implicated", "; named by a broken invariant") } else { ("", "") };
                let _ = writeln!(s, "<line class=\"package {status}{class}\" x1=\"{:.2}\" y1=\"{yy:.1}\" x2=\"{:.2}\" y2=\"{yy:.1}\"><title>package {}: {status} ({} to {}){named}</title></line>", x(*t), x(to).max(x(*t) + 1.0), esc(key), secs(*t), secs(to));
            }
        }
        for m in &self.marks {
            match m {
                Mark::Pass { t, from, to, gen, epoch, hop } => {
                    let from_y = from.map_or(y(*to) - LANE / 2.0, y);
                    let _ = writeln!(s, "<line class=\"pass\" x1=\"{:.2}\" y1=\"{from_y:.1}\" x2=\"{:.2}\" y2=\"{:.1}\" stroke=\"{}\" marker-end=\"url(#arrow)\"><title>token {} hop {hop} to {} at {}</title></line>", x(*t), x(*t), y(*to), color(*gen), esc(epoch), esc(&names[*to]), secs(*t));
                }
                Mark::Created { t, bank, gen, epoch } => {
                    let _ = writeln!(s, "<circle class=\"created\" cx=\"{:.2}\" cy=\"{:.1}\" r=\"6\" fill=\"{}\"><title>token {} created at {} ({})</title></circle>", x(*t), y(*bank), color(*gen), esc(epoch), esc(&names[*bank]), secs(*t));
                }
                Mark::Dropped { t, bank, kind, detail } => {
                    let (cx, cy) = (x(*t), y(*bank) - 12.0);
                    let _ = writeln!(s, "<path class=\"dropped {k}\" d=\"M{:.2},{:.1} l8,8 m0,-8 l-8,8\"><title>{k} at {}: {}</title></path>", cx - 4.0, cy - 4.0, esc(&names[*bank]), esc(detail), k = esc(kind));
                }
                Mark::Legs { t, bank, detail } => {
                    let class = if implicated.iter().any(|k| names_key(detail, k)) { "legs implicated" } else { "legs" };
                    let _ = writeln!(s, "<line class=\"{class}\" x1=\"{:.2}\" y1=\"{:.1}\" x2=\"{:.2}\" y2=\"{:.1}\"><title>legs finished at {}: {}</title></line>", x(*t), y(*bank) - 20.0, x(*t), y(*bank) - 14.0, esc(&names[*bank]), esc(detail));
                }
                Mark::Violation { t, what } => {
                    let _ = writeln!(s, "<line class=\"violation\" x1=\"{:.2}\" y1=\"{TOP:.0}\" x2=\"{:.2}\" y2=\"{:.1}\"><title>VIOLATION at {}: {}</title></line>", x(*t), x(*t), TOP + LANE * names.len() as f64, secs(*t), esc(what));
                }
                Mark::Accepted { .. } | Mark::Decided { .. } => {}
            }
        }
        // The token strip: a bar per epoch and stretch of passes (a gap: no pass for longer
        // than a few pixels' worth of time), so the run's token history reads at a glance
        // before zooming in on the arrows.
        for (gen, epoch, from, to, passes) in self.token_spans(end / 300) {
            let _ = writeln!(s, "<rect class=\"epoch\" x=\"{:.2}\" y=\"{strip_y:.1}\" width=\"{:.2}\" height=\"{STRIP:.0}\" fill=\"{}\"><title>token {}: {passes} passes, {} to {}</title></rect>", x(from), (x(to) - x(from)).max(1.5), color(gen), esc(&epoch), secs(from), secs(to));
        }
        let _ = write!(s, "</g>\n</svg>\n</svg>\n<script>{SCRIPT}</script>\n</body></html>\n");
        s
    }
}

/// Whether `text` names package `key` as a whole word (`c1-2@b` is not named by `c1-21@b`).
fn names_key(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + key.len()..].chars().next();
        let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '@' || c == ':');
        !part(before) && !part(after)
    })
}

/// The token strip's height.
const STRIP: f64 = 10.0;

fn secs(t: Duration) -> String {
    format!("{:.3} s", t.as_secs_f64())
}

fn tick_step(end_s: f64) -> f64 {
    [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0].into_iter().find(|s| end_s / s <= 30.0).unwrap_or(120.0)
}

/// An epoch's colour: generations spread around the hue circle.
fn color(gen: u64) -> String {
    format!("hsl({},70%,40%)", (gen * 137) % 360)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const LEGEND: &str = "Arrows: token passes, one colour per epoch; dots: tokens created; crosses: tokens dropped (stale, duplicate, replaced); bars under a lane: packages at their origin (green committed, red aborted, grey still pending; outlined in red: named by a broken invariant); ticks above a lane: legs finished there; shaded: faults; red lines: broken invariants; the token strip at the bottom: which epoch circulated when (a gap: no token moved).";

const CSS: &str = "body{font:13px sans-serif;margin:12px;color:#222}h1{font-size:16px;margin:0 0 4px}.help{color:#555;max-width:1500px}\
svg text{font:11px sans-serif;fill:#333}.lane-bg0{fill:#fafafa}.lane-bg1{fill:#f0f0f0}.tick{stroke:#ddd;vector-effect:non-scaling-stroke}\
.tick-label{fill:#888;text-anchor:middle}.pass{stroke-width:1.5;vector-effect:non-scaling-stroke}.package{stroke-width:3;vector-effect:non-scaling-stroke}\
.package.implicated{stroke-width:5;outline:none;filter:drop-shadow(0 0 2px #e00)}.legs.implicated{stroke:#e00;stroke-width:2}.epoch{opacity:.85}.package.committed{stroke:#2a9d4a}.package.aborted{stroke:#d0453a}.package.pending{stroke:#999}.legs{stroke:#555;vector-effect:non-scaling-stroke}\
.dropped{stroke:#c00;stroke-width:2;fill:none;vector-effect:non-scaling-stroke}.violation{stroke:#e00;stroke-width:3;vector-effect:non-scaling-stroke}\
.fault{fill:#f5a623;opacity:.25}.fault.crash{fill:#444}.fault.partition,.fault.hold{fill:#7b61ff}.fault.pause{fill:#1e88e5}\
.fault.stall{fill:#8d6e63}.fault.lose_replies,.fault.slow{fill:#00897b}.fault.rogue,.fault.flood{fill:#e91e63}";

/// Zoom (wheel) and pan (drag) of the time axis: the plot's viewBox narrows and moves; the
/// lanes' names stay. Double-click shows the whole run again.
const SCRIPT: &str = "(function(){var p=document.getElementById('plot');if(!p)return;var vb=p.viewBox.baseVal;var W=vb.width,H=vb.height;var x0=0,w=W;\
function set(){w=Math.max(W/2000,Math.min(W,w));x0=Math.max(0,Math.min(W-w,x0));p.setAttribute('viewBox',x0+' 0 '+w+' '+H);}\
p.addEventListener('wheel',function(e){e.preventDefault();var r=p.getBoundingClientRect();var f=(e.clientX-r.left)/r.width;var at=x0+f*w;w*=e.deltaY<0?0.8:1.25;x0=at-f*w;set();},{passive:false});\
var drag=null;p.addEventListener('mousedown',function(e){drag={x:e.clientX,x0:x0};});window.addEventListener('mouseup',function(){drag=null;});\
window.addEventListener('mousemove',function(e){if(!drag)return;var r=p.getBoundingClientRect();x0=drag.x0-(e.clientX-drag.x)/r.width*w;set();});\
p.addEventListener('dblclick',function(){x0=0;w=W;set();});})();";

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_page_has_a_lane_per_bank_an_arrow_per_pass_and_the_faults() {
        let mut t = Timeline::default();
        t.mark(Mark::Created { t: 10 * MS, bank: 0, gen: 1, epoch: "1@a".into() });
        t.mark(Mark::Pass { t: 20 * MS, from: Some(0), to: 1, gen: 1, epoch: "1@a".into(), hop: 1 });
        t.mark(Mark::Pass { t: 30 * MS, from: Some(1), to: 0, gen: 1, epoch: "1@a".into(), hop: 2 });
        t.mark(Mark::Accepted { t: 15 * MS, bank: 1, key: "p1@b".into() });
        t.mark(Mark::Decided { t: 40 * MS, bank: 1, key: "p1@b".into(), status: "committed".into() });
        t.begin(50 * MS, Some(1), "crash", "crash b <x>".into(), None);
        t.end(70 * MS, Some(1), "crash");
        t.begin(60 * MS, None, "partition", "partition".into(), Some(10 * MS));
        t.mark(Mark::Violation { t: 80 * MS, what: "money: \"lost\"".into() });
        let names = vec!["a".to_string(), "b".to_string()];
        let html = t.html("run & <seed>", &names, 100 * MS);
        assert_eq!(html.matches("class=\"lane\"").count(), 2);
        assert_eq!(html.matches("class=\"pass\"").count(), 2);
        assert_eq!(html.matches("class=\"fault ").count(), 2);
        assert_eq!(html.matches("class=\"package committed\"").count(), 1);
        assert_eq!(html.matches("class=\"violation\"").count(), 1);
        assert!(html.contains("run &amp; &lt;seed&gt;") && html.contains("crash b &lt;x&gt;") && html.contains("&quot;lost&quot;"), "escaped");
        assert!(!html.contains("http://") || html.matches("http://").count() == 1, "only the SVG namespace, nothing fetched");
        assert_eq!(t.bands[0].to, Some(70 * MS), "the crash band ends at the restart");
        assert_eq!(html, t.html("run & <seed>", &names, 100 * MS), "same marks, same bytes");
        // The strip splits where no pass came for 1/300 of the run: here every 10 ms.
        assert_eq!(html.matches("class=\"epoch\"").count(), 3, "the token strip");
        assert!(html.contains("token 1@a: 1 passes, 0.030 s to 0.030 s"), "a span's passes and times");
        assert!(!html.contains("implicated\""), "the violation names no package");
    }

    #[test]
    fn the_packages_a_broken_invariant_names_are_drawn_apart_and_epochs_are_spans() {
        let mut t = Timeline::default();
        t.mark(Mark::Created { t: 0 * MS, bank: 0, gen: 1, epoch: "1@a".into() });
        t.mark(Mark::Pass { t: 5 * MS, from: Some(0), to: 1, gen: 1, epoch: "1@a".into(), hop: 1 });
        t.mark(Mark::Created { t: 50 * MS, bank: 1, gen: 2, epoch: "2@b".into() });
        t.mark(Mark::Pass { t: 60 * MS, from: Some(1), to: 0, gen: 2, epoch: "2@b".into(), hop: 1 });
        for k in ["c1-2@b:1", "c1-21@b:1", "c1-1@b:1"] {
            t.mark(Mark::Accepted { t: 10 * MS, bank: 1, key: k.into() });
        }
        t.mark(Mark::Legs { t: 20 * MS, bank: 0, detail: "1 legs: c1-2@b:1 Commit".into() });
        t.mark(Mark::Legs { t: 21 * MS, bank: 0, detail: "1 legs: c1-21@b:1 Commit".into() });
        t.mark(Mark::Violation { t: 70 * MS, what: "money: packages on it: c1-2@b:1 Aborted/committed credit, x".into() });
        assert_eq!(t.implicated().into_iter().collect::<Vec<_>>(), vec!["c1-2@b:1"], "a whole key, not a prefix of another");
        let html = t.html("r", &["a".to_string(), "b".to_string()], 100 * MS);
        assert_eq!(html.matches("implicated\"").count(), 2, "the package's bar and its legs' tick");
        assert!(html.contains("package c1-2@b:1: pending (0.010 s to 0.100 s); named by a broken invariant"));
        // A check that names the id alone ("package c1-1 was refused ...") names it too.
        t.mark(Mark::Violation { t: 80 * MS, what: "exactly once: package c1-1 was refused to its client (422) but b committed it".into() });
        assert_eq!(t.implicated().into_iter().collect::<Vec<_>>(), vec!["c1-1@b:1", "c1-2@b:1"]);
        assert_eq!(t.token_spans(20 * MS), vec![(1, "1@a".to_string(), 0 * MS, 5 * MS, 1), (2, "2@b".to_string(), 50 * MS, 60 * MS, 1)]);
        t.mark(Mark::Pass { t: 65 * MS, from: Some(0), to: 1, gen: 2, epoch: "2@b".into(), hop: 2 });
        t.mark(Mark::Pass { t: 95 * MS, from: Some(1), to: 0, gen: 2, epoch: "2@b".into(), hop: 3 });
        assert_eq!(t.token_spans(20 * MS)[1..], [(2, "2@b".to_string(), 50 * MS, 65 * MS, 2), (2, "2@b".to_string(), 95 * MS, 95 * MS, 1)], "30 ms without a pass splits the span");
        assert_eq!(html.matches("class=\"epoch\"").count(), 4, "at 1/300 of 100 ms, each mark is its own span");
    }
}
