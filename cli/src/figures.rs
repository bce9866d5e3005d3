//! `closeloop report figures --from --to`: the article's other figures (leads sunk, signing
//! cycle, approval steps overdue, SOP task completion, health distribution) as short aligned
//! text or JSON. The library computes them ([`closeloop::Runtime::figures`]); this file only
//! lays them out.

// Wired to `closeloop report figures` beside `report penetration` when the report commands
// meet; until then only the tests call in.
#![allow(dead_code)]

use std::process::ExitCode;

use closeloop::reports::{
    Figures, FiguresQuery, HealthDistribution, SigningCycle, StepOverdue, SunkLeads, TaskCompletion, TaskCounts,
};
use jiff::civil::Date;

use crate::context::show;
use crate::render::width;
use crate::{Context, UserError};

/// `closeloop report figures --from DAY --to DAY`.
pub(crate) fn figures(ctx: &Context, from: Date, to: Date) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let figures = rt.figures(&FiguresQuery { from, to }).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &figures, || human(&figures))
}

/// The figures for people: one short block per figure that applies.
pub(crate) fn human(f: &Figures) -> String {
    let mut out = vec![format!("figures {} to {} (at {})", f.from, f.to, f.at)];
    let blocks =
        [sunk(&f.leads_sunk), signing(&f.signing), steps(&f.steps_overdue), tasks(&f.tasks), health(&f.health)];
    out.extend(blocks.into_iter().flatten());
    if out.len() == 1 {
        out.push("\nnothing to show: no installed app has a lead metric, an approval chain, an SOP or a score".into());
    }
    out.join("\n")
}

fn percent(share: Option<f64>) -> String {
    share.map(|s| format!("{:.1}%", s * 100.0)).unwrap_or_else(|| "–".into())
}

/// Rows as columns, by display width: the first `left` columns left-aligned (names), the others
/// right-aligned (numbers).
fn table(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| width(s)).max().unwrap_or(0)).collect();
    let line = |r: &Vec<String>| {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = " ".repeat(widths[c].saturating_sub(width(s)));
                if c < left {
                    format!("{s}{pad}")
                } else {
                    format!("{pad}{s}")
                }
            })
            .collect();
        format!("  {}", cells.join("  ").trim_end())
    };
    rows.iter().map(line).collect::<Vec<_>>().join("\n")
}

fn sunk(list: &[SunkLeads]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut out = vec!["\nleads sunk (no contact within 72h)".to_string()];
    for s in list {
        out.push(format!(
            "  {} {}: {} of {} decided ({}), {} pending; never contacted {}, contacted late {}, closed {}",
            s.app,
            s.form,
            s.sunk,
            s.decided,
            percent(s.share),
            s.pending,
            s.never_contacted,
            s.contacted_late,
            s.closed
        ));
        for (name, groups) in [("members", &s.by_member), ("regions", &s.by_region)] {
            if !groups.is_empty() {
                let shown: Vec<String> = groups.iter().map(|g| format!("{} {}/{}", g.key, g.sunk, g.decided)).collect();
                out.push(format!("    {name}: {}", shown.join(", ")));
            }
        }
    }
    Some(out.join("\n"))
}

fn signing(list: &[SigningCycle]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let days = |d: Option<f64>| d.map(|d| format!("{d:.1} d")).unwrap_or_else(|| "–".into());
    let mut rows = vec![["chain", "started", "signed", "median", "p90", "unsigned", "at signature", "ended"]
        .map(String::from)
        .to_vec()];
    for c in list {
        rows.push(vec![
            format!("{} {}", c.app, c.chain),
            c.started.to_string(),
            c.signed.to_string(),
            days(c.median_days),
            days(c.p90_days),
            c.unsigned.to_string(),
            c.awaiting_signature.to_string(),
            c.ended.to_string(),
        ]);
    }
    Some(format!("\nsigning cycle (submitted to signed)\n{}", table(&rows, 1)))
}

fn steps(list: &[StepOverdue]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut rows = vec![["step", "opened", "overdue", "pending", "share"].map(String::from).to_vec()];
    for s in list {
        rows.push(vec![
            format!("{}.{}", s.chain, s.step),
            s.opened.to_string(),
            s.overdue.to_string(),
            s.pending.to_string(),
            percent(s.share),
        ]);
    }
    Some(format!("\napproval steps overdue (opened in the period)\n{}", table(&rows, 1)))
}

fn task_row(name: String, c: &TaskCounts) -> Vec<String> {
    let n = [c.due, c.on_time, c.late, c.open_overdue, c.open, c.cancelled].map(|n| n.to_string());
    std::iter::once(name).chain(n).chain(std::iter::once(percent(c.rate))).collect()
}

fn tasks(list: &[TaskCompletion]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut rows = vec![["task", "due", "on time", "late", "open overdue", "open", "cancelled", "rate"]
        .map(String::from)
        .to_vec()];
    for c in list {
        rows.push(task_row(c.sop.clone(), &c.counts));
        rows.extend(c.tasks.iter().map(|t| task_row(format!("  {}", t.task), &t.counts)));
    }
    Some(format!("\nSOP tasks due in the period (rate: on time of those done or overdue)\n{}", table(&rows, 1)))
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn health(list: &[HealthDistribution]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut out = vec!["\nhealth distribution".to_string()];
    for d in list {
        out.push(format!(
            "  {} {}.{}: {} records, {} unscored ({} closed left out)",
            d.app, d.form, d.field, d.records, d.unscored, d.closed
        ));
        let buckets: Vec<String> = d.buckets.iter().map(|b| format!("{}–{}: {}", b.from, b.to, b.count)).collect();
        out.push(format!("    {}", buckets.join("  ")));
        if d.under.is_empty() {
            out.push(format!("    none below {}", number(d.below)));
            continue;
        }
        out.push(format!("    below {}:", number(d.below)));
        let rows: Vec<Vec<String>> = d
            .under
            .iter()
            .map(|l| {
                let (name, owner) = (l.name.clone().unwrap_or_default(), l.owner.clone().unwrap_or_default());
                vec![format!("  {}", l.record), name, owner, number(l.value)]
            })
            .collect();
        out.push(table(&rows, 3));
    }
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use closeloop::reports::{Figures, HealthBucket, HealthDistribution, LowScore, StepOverdue};

    #[test]
    fn columns_line_up_under_wide_names_and_empty_figures_are_left_out() {
        let step = |step: &str, opened, overdue| StepOverdue {
            app: "quote-approval".into(),
            chain: "quote_chain".into(),
            step: step.into(),
            opened,
            overdue,
            pending: 0,
            share: (opened > 0).then(|| overdue as f64 / opened as f64),
        };
        let low = |record: &str, name: &str, value| LowScore {
            record: record.into(),
            name: Some(name.into()),
            owner: Some("m_lin".into()),
            value,
        };
        let f = Figures {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            at: "2026-12-01T00:00:00.000000Z".into(),
            leads_sunk: Vec::new(),
            signing: Vec::new(),
            steps_overdue: vec![step("supervisor", 12, 3), step("legal", 0, 0)],
            tasks: Vec::new(),
            health: vec![HealthDistribution {
                app: "customer-success".into(),
                score: "health".into(),
                form: "account".into(),
                field: "health".into(),
                records: 2,
                unscored: 0,
                closed: 0,
                buckets: vec![HealthBucket { from: 40, to: 59, count: 2 }],
                below: 60.0,
                under: vec![low("ACC-1", "上海明远科技", 45.0), low("ACC-22", "Acme", 52.5)],
            }],
        };
        let text = super::human(&f);
        assert!(!text.contains("leads sunk") && !text.contains("signing"), "{text}");
        assert!(text.contains("  quote_chain.supervisor      12        3        0  25.0%"), "{text}");
        assert!(text.contains("  quote_chain.legal            0        0        0      –"), "{text}");
        // 上海明远科技 is twelve columns wide: the owners line up.
        assert!(
            text.contains("    ACC-1   上海明远科技  m_lin    45\n    ACC-22  Acme          m_lin  52.5"),
            "{text}"
        );
    }
}
