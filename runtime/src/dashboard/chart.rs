//! A command's last hour as a small inline SVG: p50 and p99 latency per
//! minute on a log scale, and the minutes with failures marked.

use std::fmt::Write;
use std::time::Duration;

use crate::telemetry::recent::MinuteStats;

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 48.0;
/// The scale's ends: 10 µs and 100 s.
const LOW: f64 = 1e-5;
const HIGH: f64 = 100.0;

/// The SVG's markup. Numbers only: nothing a user typed goes in.
pub fn latency(minutes: &[MinuteStats]) -> String {
    let step = WIDTH / minutes.len().max(1) as f64;
    let x = |i: usize| step * (i as f64 + 0.5);
    let y = |d: Duration| {
        let seconds = d.as_secs_f64().clamp(LOW, HIGH);
        HEIGHT - (seconds / LOW).log10() / (HIGH / LOW).log10() * HEIGHT
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart">"#
    );
    // Gridlines at 1 ms and 1 s.
    for mark in [1e-3, 1.0] {
        let at = y(Duration::from_secs_f64(mark));
        let _ = write!(svg, r##"<line x1="0" x2="{WIDTH}" y1="{at:.1}" y2="{at:.1}" stroke="#ddd"/>"##);
    }
    for (i, minute) in minutes.iter().enumerate() {
        if minute.failed > 0 {
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="0" width="{step:.1}" height="{HEIGHT}" fill="#f8d0d0"/>"##,
                x(i) - step / 2.0
            );
        }
    }
    for (pick, colour) in [(0, "#3465a4"), (1, "#ce5c00")] {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, minute) in minutes.iter().enumerate() {
            match if pick == 0 { minute.p50 } else { minute.p99 } {
                Some(value) => {
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(i), y(value));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                svg,
                r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-linecap="round"/>"#,
                path.trim_end()
            );
        }
        // A lone minute draws as a dot.
        for (i, minute) in minutes.iter().enumerate() {
            let value = if pick == 0 { minute.p50 } else { minute.p99 };
            let alone = |j: Option<usize>| j.and_then(|j| minutes.get(j)).is_none_or(|m| m.count == 0);
            if let (Some(value), true, true) = (value, alone(i.checked_sub(1)), alone(Some(i + 1))) {
                let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{colour}"/>"#, x(i), y(value));
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(ago: usize, ms: Option<u64>, failed: u32) -> MinuteStats {
        let d = ms.map(Duration::from_millis);
        MinuteStats { ago, count: u32::from(ms.is_some()), failed, p50: d, p99: d.map(|d| d * 3) }
    }

    #[test]
    fn lines_break_at_empty_minutes_and_failures_are_marked() {
        let minutes = [
            minute(4, Some(1), 0),
            minute(3, Some(2), 0),
            minute(2, None, 0),
            minute(1, Some(5), 1),
            minute(0, None, 0),
        ];
        let svg = latency(&minutes);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Two pieces per line: the run of two minutes, and a lone dot.
        assert_eq!(svg.matches("<path").count(), 2);
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 4, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches("<rect").count(), 1);
    }

    #[test]
    fn an_empty_hour_is_an_empty_chart() {
        let svg = latency(&[minute(0, None, 0)]);
        assert!(!svg.contains("<path") && !svg.contains("<circle"));
    }
}
