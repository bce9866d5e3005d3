//! The report commands: `report penetration` (action penetration against its targets, where
//! instances fell off the path, the largest gaps by member and region) in text, JSON, CSV or a
//! self-contained HTML page, and `report figures` (the article's other figures; laid out in
//! figures.rs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use closeloop::model::{Dimension, Lang};
use closeloop::reports::{percent, to_csv, to_html, MetricReport, PenetrationReport, ReportQuery, MIN_DECIDED};
use jiff::civil::Date;

use crate::{print, Context, Format, UserError};

/// The report commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Reports computed from the event log.
    #[command(subcommand)]
    Report(Report),
}

/// Which report.
#[derive(Debug, Subcommand)]
pub(crate) enum Report {
    /// Action penetration: the share of key actions done within their deadline along the
    /// standard path (all metrics, or the ones named).
    Penetration {
        /// Metric ids (default: every metric of every installed app).
        metrics: Vec<String>,
        /// The first day of the period, YYYY-MM-DD (default: 29 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// The last day of the period, included (default: today).
        #[arg(long)]
        to: Option<String>,
        /// Breakdowns: member, region, team, week, month (default: each metric's own).
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
        /// Also list every instance with its outcome (JSON).
        #[arg(long)]
        instances: bool,
        /// Write the report to this file instead of the terminal (with --format html, default
        /// penetration.html).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The language of the HTML page.
        #[arg(long, value_parser = ["zh", "en"], default_value = "zh")]
        lang: String,
    },
    /// The article's other figures: leads sunk (no contact within 72 hours), the signing
    /// cycle, approval steps overdue, SOP task completion, and the health score distribution.
    Figures {
        /// The first day of the period, YYYY-MM-DD (default: 29 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// The last day of the period, included (default: today).
        #[arg(long)]
        to: Option<String>,
    },
}

pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    match cmd {
        Command::Report(Report::Penetration { metrics, from, to, by, instances, out, lang }) => {
            let (from, to) = period(ctx, from.as_deref(), to.as_deref())?;
            penetration(ctx, metrics, (from, to), by, *instances, out.as_ref(), lang)
        }
        Command::Report(Report::Figures { from, to }) => {
            if matches!(ctx.format, Format::Csv | Format::Html) {
                return Err(UserError("report figures prints human or json".into()));
            }
            let (from, to) = period(ctx, from.as_deref(), to.as_deref())?;
            crate::figures::figures(ctx, from, to)
        }
    }
}

/// The period asked for: `--to` (default today) and `--from` (default 29 days before it).
fn period(ctx: &Context, from: Option<&str>, to: Option<&str>) -> Result<(Date, Date), UserError> {
    let now = ctx.now.unwrap_or_else(jiff::Timestamp::now);
    let to = match to {
        Some(t) => date(t, "--to")?,
        None => now.to_zoned(jiff::tz::TimeZone::system()).date(),
    };
    let from = match from {
        Some(f) => date(f, "--from")?,
        None => to.checked_sub(jiff::Span::new().days(29)).unwrap_or(to),
    };
    Ok((from, to))
}

fn penetration(
    ctx: &Context,
    metrics: &[String],
    (from, to): (Date, Date),
    by: &[String],
    instances: bool,
    out: Option<&PathBuf>,
    lang: &str,
) -> Result<ExitCode, UserError> {
    let by = by.iter().map(|b| dimension(b)).collect::<Result<Vec<_>, _>>()?;
    let query = ReportQuery { metrics: metrics.to_vec(), from, to, by, instances };
    let report = ctx.runtime()?.penetration(&query).map_err(|e| ctx.engine_error(e))?;
    let lang = if lang == "en" { Lang::En } else { Lang::Zh };
    let text = match ctx.format {
        Format::Human => human(&report),
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default(),
        Format::Csv => to_csv(&report),
        Format::Html => to_html(&report, lang),
    };
    let out = out.cloned().or_else(|| (ctx.format == Format::Html).then(|| PathBuf::from("penetration.html")));
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))?;
            print(&format!("wrote {}", path.display()))
        }
        None => print(text.trim_end()),
    }
}

fn date(text: &str, flag: &str) -> Result<Date, UserError> {
    text.parse().map_err(|_| UserError(format!("{flag} \"{text}\" is not a date; write it as 2026-11-01")))
}

fn dimension(text: &str) -> Result<Dimension, UserError> {
    match text.trim() {
        "member" => Ok(Dimension::Member),
        "region" => Ok(Dimension::Region),
        "team" => Ok(Dimension::Team),
        "week" => Ok(Dimension::Week),
        "month" => Ok(Dimension::Month),
        other => {
            Err(UserError(format!("--by \"{other}\" is not a breakdown; use member, region, team, week or month")))
        }
    }
}

/// The report for a terminal: per metric the rate against its target, the counts, the three
/// most common places instances fell off the path, and the largest gaps by member and region.
pub(crate) fn human(report: &PenetrationReport) -> String {
    let mut out = format!("action penetration {} to {} (as of {})\n", report.from, report.to, report.at);
    for m in &report.metrics {
        out.push('\n');
        out.push_str(&metric(m));
    }
    if report.metrics.is_empty() {
        out.push_str("\nno metric: the installed apps declare none\n");
    }
    out
}

fn metric(m: &MetricReport) -> String {
    let label = m.label.as_ref().map(|l| l.get(Lang::Zh).to_string()).unwrap_or_default();
    let t = &m.tally;
    let verdict = match t.rate {
        Some(r) if r >= m.target => "on target".to_string(),
        Some(r) => format!("{:.1} points below target", (m.target - r) * 100.0),
        None => "nothing decided yet".to_string(),
    };
    let mut out = format!(
        "{} {label}\n  rate {} against target {}: {verdict}\n  population {}, penetrated {}, decided {}, pending {}\n",
        m.id,
        percent(t.rate),
        percent(Some(m.target)),
        t.population,
        t.penetrated,
        t.decided,
        t.pending
    );
    if !m.falloff.is_empty() {
        out.push_str("  fell off the path:\n");
        for f in m.falloff.iter().take(3) {
            out.push_str(&format!("    {:>5}  {} ({})\n", f.count, f.step, f.reason.as_str()));
        }
    }
    for b in m.breakdowns.iter().filter(|b| matches!(b.by, Dimension::Member | Dimension::Region | Dimension::Team)) {
        // A member with one or two decided instances is noise: rank members with at least five
        // when there are any.
        let below: Vec<_> = b.groups.iter().filter(|g| g.gap.is_some_and(|gap| gap > 0.0)).collect();
        let people = b.by == Dimension::Member;
        let sized: Vec<_> = below.iter().copied().filter(|g| !people || g.tally.decided >= MIN_DECIDED).collect();
        let mut worst = if sized.is_empty() { below } else { sized };
        worst.sort_by(|a, b| b.gap.partial_cmp(&a.gap).unwrap_or(std::cmp::Ordering::Equal));
        if worst.is_empty() {
            continue;
        }
        let by = serde_json::to_value(b.by).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        out.push_str(&format!("  largest gaps by {by}:\n"));
        for g in worst.iter().take(3) {
            out.push_str(&format!(
                "    {:<12} {:>6} ({} of {} decided)\n",
                g.key,
                percent(g.tally.rate),
                g.tally.penetrated,
                g.tally.decided
            ));
        }
    }
    out
}
