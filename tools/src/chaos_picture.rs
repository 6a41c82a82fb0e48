//! The picture of a chaos run (`bench chaos --html FILE`, `make chaos`): commits per second,
//! and latency percentiles per second, over wall time, with every kill, pause and network
//! fault shaded and named, so availability under faults is seen at a glance. Drawn with
//! plotters into inline SVG: one self-contained HTML page.

use plotters::prelude::*;
use std::collections::BTreeMap;

/// A fault on bank `bank` from `from_s` to `to_s` (seconds since the load began).
#[derive(Clone, Debug)]
pub struct FaultSpan {
    pub kind: String,
    pub bank: usize,
    pub from_s: f64,
    pub to_s: f64,
}

/// A package's answer: when it came, how long it took, what it said.
#[derive(Clone, Debug)]
pub struct Answer {
    pub at_s: f64,
    pub latency_ms: f64,
    pub status: String,
}

fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "kill" => RGBColor(80, 80, 80),
        "pause" => RGBColor(30, 136, 229),
        "isolate" => RGBColor(123, 97, 255),
        "lose-replies" => RGBColor(0, 137, 123),
        _ => RGBColor(245, 166, 35),
    }
}

/// Per whole second since the start: (commits, latencies of answers in that second).
fn per_second(answers: &[Answer], secs: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut commits = vec![0.0; secs];
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); secs];
    for a in answers {
        let i = (a.at_s.max(0.0) as usize).min(secs - 1);
        if a.status == "committed" {
            commits[i] += 1.0;
        }
        if a.status == "committed" || a.status == "aborted" {
            lat[i].push(a.latency_ms);
        }
    }
    for l in &mut lat {
        l.sort_by(f64::total_cmp);
    }
    (commits, lat)
}

fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

fn chart(title: &str, y_desc: &str, secs: usize, faults: &[FaultSpan], series: &[(&str, RGBColor, Vec<(f64, f64)>)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 330)).into_drawing_area();
        root.fill(&WHITE).expect("an SVG string cannot fail");
        let y_max = series.iter().flat_map(|(_, _, v)| v.iter().map(|p| p.1)).fold(1.0f64, f64::max) * 1.1;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..secs as f64, 0f64..y_max)
            .expect("a chart on a string");
        c.configure_mesh().x_desc("seconds since the load began").y_desc(y_desc).light_line_style(WHITE.mix(0.0)).draw().expect("mesh");
        for f in faults {
            let color = fault_color(&f.kind);
            let band = Rectangle::new([(f.from_s, 0.0), (f.to_s.max(f.from_s + 0.05), y_max)], color.mix(0.22).filled());
            c.draw_series(std::iter::once(band)).expect("a band");
            c.draw_series(std::iter::once(Text::new(format!("{} b{}", f.kind, f.bank), (f.from_s, y_max * 0.97), ("sans-serif", 10).into_font().color(&color))))
                .expect("a label");
        }
        for (name, color, points) in series {
            c.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .expect("a line")
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        c.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK.mix(0.3)).draw().expect("legend");
        root.present().expect("an SVG string cannot fail");
    }
    svg
}

/// The page: the run's commits and latencies per second, its faults shaded.
pub fn html(title: &str, faults: &[FaultSpan], answers: &[Answer], banks: &[String]) -> String {
    let end = answers.iter().map(|a| a.at_s).chain(faults.iter().map(|f| f.to_s)).fold(1.0f64, f64::max);
    let secs = end.ceil() as usize + 1;
    let (commits, lat) = per_second(answers, secs);
    let mid = |i: usize| i as f64 + 0.5;
    let rate: Vec<(f64, f64)> = commits.iter().enumerate().map(|(i, c)| (mid(i), *c)).collect();
    let series = |p: f64| -> Vec<(f64, f64)> { lat.iter().enumerate().filter_map(|(i, l)| pct(l, p).map(|v| (mid(i), v))).collect() };
    let rate_svg = chart("Packages committed per second", "commits/s", secs, faults, &[("committed/s", RGBColor(42, 157, 74), rate)]);
    let lat_svg = chart(
        "Latency of the packages answered in each second",
        "ms",
        secs,
        faults,
        &[("p50", RGBColor(30, 136, 229), series(0.5)), ("p99", RGBColor(208, 69, 58), series(0.99)), ("max", RGBColor(120, 120, 120), series(1.0))],
    );
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in faults {
        *kinds.entry(f.kind.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect();
    let names: Vec<String> = banks.iter().enumerate().map(|(i, b)| format!("b{i} = {b}")).collect();
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font:13px sans-serif;margin:12px}}h1{{font-size:16px}}</style></head><body>\n<h1>{t}</h1>\n<p>Faults (shaded, named on top): {f}. Banks: {b}. {n} answers.</p>\n<div class=\"chart\" id=\"rate\">{rate_svg}</div>\n<div class=\"chart\" id=\"latency\">{lat_svg}</div>\n</body></html>\n",
        t = esc(title),
        f = if summary.is_empty() { "none".to_string() } else { summary.join(", ") },
        b = esc(&names.join(", ")),
        n = answers.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_both_charts_and_a_band_per_fault() {
        let faults = vec![
            FaultSpan { kind: "kill".into(), bank: 1, from_s: 1.0, to_s: 2.0 },
            FaultSpan { kind: "pause".into(), bank: 2, from_s: 3.0, to_s: 3.5 },
        ];
        let answers: Vec<Answer> = (0..400).map(|i| Answer { at_s: i as f64 / 80.0, latency_ms: 10.0 + (i % 7) as f64, status: if i % 5 == 0 { "aborted" } else { "committed" }.into() }).collect();
        let page = html("chaos <seed 1>", &faults, &answers, &["a:1".into(), "b:1".into(), "c:1".into()]);
        assert_eq!(page.matches("<svg").count(), 2, "two charts");
        assert_eq!(page.matches("kill b1").count(), 2, "the kill named on both charts");
        assert_eq!(page.matches("pause b2").count(), 2);
        assert!(page.contains("1 × kill, 1 × pause") && page.contains("chaos &lt;seed 1&gt;"));
        let (commits, lat) = per_second(&answers, 6);
        assert_eq!(commits[0], 64.0, "80 answers in the first second, a fifth aborted");
        assert_eq!(pct(&lat[0], 1.0), Some(16.0));
    }
}
