//! The `compare` code path end to end, against wampring alone: two router entries pointing at
//! the same wampring (WebSocket and RawSocket), one round of a short scenario each; the
//! markdown table and the SVG chart must be written and name both routers, and the chart must
//! carry its title (scenario, measured time, serializer, transports, date, commit) and units.

mod common;

use common::{run_load, Router};
use std::time::Duration;

#[test]
fn compare_writes_markdown_and_svg() {
    let router = Router::start();
    let out = router.dir.path().join("compare-out");
    let first = format!("ws={}", router.ws_url);
    let second = format!("raw={}", router.rs_url);
    let pid = format!("ws={}", router.pid());
    let output = run_load(
        &[
            "compare",
            "--router",
            &first,
            "--router",
            &second,
            "--router-pid-of",
            &pid,
            "--repeat",
            "1",
            "--out",
            out.to_str().unwrap(),
            "rpc",
            "--window",
            "2",
            "--duration",
            "500ms",
            "--warmup",
            "200ms",
        ],
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "compare failed: {stderr}");

    let md = std::fs::read_to_string(out.join("compare.md")).expect("compare.md written");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), md.trim(), "the table is also printed");
    let ws_row = md
        .lines()
        .find(|l| l.starts_with("| ws |"))
        .unwrap_or_else(|| panic!("{md}"));
    let raw_row = md
        .lines()
        .find(|l| l.starts_with("| raw |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        ws_row.contains("1.00×"),
        "the first router is the baseline: {ws_row}"
    );
    assert!(
        ws_row.ends_with("| 1/0 |") && raw_row.ends_with("| 1/0 |"),
        "{md}"
    );
    assert!(md.contains("achieved calls/s"), "{md}");
    assert!(md.contains("rpc --window 2"), "{md}");

    let svg = std::fs::read_to_string(out.join("compare.svg")).expect("compare.svg written");
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    // Router names label the bars (plotters writes each label on its own line in <text>).
    let labels: Vec<&str> = svg.lines().map(str::trim).collect();
    assert!(labels.contains(&"ws") && labels.contains(&"raw"), "{svg}");
    // The title names the run (both transports, as the routers differ), the axes their units.
    let title = labels
        .iter()
        .find(|l| {
            l.starts_with("rpc, window 2 · 0.5 s measured · json over rawsocket / websocket · ")
        })
        .unwrap_or_else(|| panic!("no title in {svg}"));
    assert!(title.contains(" UTC · wampring-load "), "{title}");
    assert!(
        labels.contains(&"calls/s") && labels.contains(&"latency (µs)"),
        "{svg}"
    );
    for name in ["ws-1.json", "raw-1.json"] {
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("raw").join(name)).unwrap())
                .unwrap();
        assert!(raw["counts"]["ok"].as_u64().unwrap() > 0, "{raw}");
    }
}

#[test]
fn compare_refuses_flags_it_sets_itself() {
    let output = run_load(
        &[
            "compare",
            "--router",
            "a=ws://127.0.0.1:1/ws",
            "rpc",
            "--url",
            "ws://127.0.0.1:2/ws",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--url"));
}
