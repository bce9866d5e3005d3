//! `closeloop bench`: speed measured against a baseline in the same run, never as a timed test.

use std::time::{Duration, Instant};

use closeloop::yaml::{self, Limits};
use closeloop::{template, Loader};
use serde_json::json;

/// Times `f` over `runs` runs after a warm-up; returns the sorted durations.
fn sample(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..runs.min(10) {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let i = ((times.len() as f64 - 1.0) * p).round() as usize;
    times.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Loads the largest bundled template (quote-approval) and compares each stage with the bare
/// YAML event parse of the same text.
pub fn load(runs: usize, json_output: bool) -> Result<String, String> {
    let loader = Loader::new().map_err(|e| e.to_string())?;
    let files = template("quote-approval").ok_or("the quote-approval template is missing")?.app_files();
    let text = files.app_yaml.clone();
    let limits = Limits::default();
    let bare = sample(runs, || {
        let _ = std::hint::black_box(yaml::count_events(&text));
    });
    let tree = sample(runs, || {
        let _ = std::hint::black_box(yaml::parse("app.yaml", &text, limits));
    });
    let full = sample(runs, || {
        let loaded = loader.load(&files);
        std::hint::black_box(loaded.app.is_some());
    });
    let loaded = loader.load(&files);
    if !loaded.is_valid() {
        return Err(
            "the quote-approval template does not load; run `closeloop validate app-templates/quote-approval`".into()
        );
    }
    let bomb = hostile_bomb();
    let bomb_times = sample(runs.min(50), || {
        std::hint::black_box(loader.load(&closeloop::AppFiles { app_yaml: bomb.clone(), ..Default::default() }));
    });
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_times = sample(runs.min(50), || {
        std::hint::black_box(loader.load(&closeloop::AppFiles { app_yaml: deep.clone(), ..Default::default() }));
    });
    let rows = [
        ("bare YAML parse (saphyr events, nothing built)", &bare),
        ("YAML tree with positions and limits", &tree),
        ("full load: tree, schema, model, checks, scripts", &full),
        ("billion-laughs bomb refused", &bomb_times),
        ("20,000-deep nesting refused", &deep_times),
    ];
    let base = ms(percentile(&bare, 0.5)).max(f64::EPSILON);
    if json_output {
        let items: Vec<_> = rows
            .iter()
            .map(|(name, t)| json!({"stage": name, "median_ms": ms(percentile(t, 0.5)), "p95_ms": ms(percentile(t, 0.95)), "x_bare": ms(percentile(t, 0.5)) / base}))
            .collect();
        let out = json!({"file": "app-templates/quote-approval/app.yaml", "bytes": text.len(), "runs": runs, "scripts": loaded.app.map(|a| a.script_count()), "stages": items});
        return Ok(serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    let mut out = format!(
        "bench load: app-templates/quote-approval/app.yaml ({} bytes), {runs} runs per stage\n\n{:<50} {:>10} {:>10} {:>9}\n",
        text.len(),
        "stage",
        "median ms",
        "p95 ms",
        "x bare"
    );
    for (name, t) in rows {
        let median = ms(percentile(t, 0.5));
        out.push_str(&format!("{name:<50} {median:>10.3} {:>10.3} {:>9.1}\n", ms(percentile(t, 0.95)), median / base));
    }
    out.push_str(&format!("\nratio full load / bare parse: {:.1}", ms(percentile(&full, 0.5)) / base));
    Ok(out)
}

fn hostile_bomb() -> String {
    let mut s = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        s.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], vec![format!("*{}", w[0]); 9].join(",")));
    }
    s
}
