//! The penetration report as CSV and as one self-contained HTML page with SVG charts: the
//! trend against the target, and bars per member and region with the target line. No script,
//! no external file: it opens from a disk, a mail attachment or the web app alike.

use std::fmt::Write as _;

use super::{Group, MetricReport, PenetrationReport};
use crate::engine::records::guard;
use crate::model::{Dimension, Lang};

/// A rate as people read it: `87.5%`, or `–` while nothing is decided.
pub fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "–".into())
}

fn dimension_in(by: Dimension, lang: Lang) -> &'static str {
    if lang == Lang::Zh {
        return match by {
            Dimension::Member => "成员",
            Dimension::Region => "区域",
            Dimension::Team => "团队",
            Dimension::Week => "周",
            Dimension::Month => "月",
        };
    }
    dimension(by)
}

fn reason_in(reason: super::Reason, lang: Lang) -> &'static str {
    use super::Reason;
    if lang == Lang::En {
        return reason.as_str();
    }
    match reason {
        Reason::Missing => "没有记录",
        Reason::Late => "超过截止时间",
        Reason::Overdue => "超过本步时限",
        Reason::OutOfOrder => "顺序颠倒",
        Reason::Ended => "中途终止",
    }
}

fn dimension(by: Dimension) -> &'static str {
    match by {
        Dimension::Member => "member",
        Dimension::Region => "region",
        Dimension::Team => "team",
        Dimension::Week => "week",
        Dimension::Month => "month",
    }
}

/// The report as CSV: a `total` row per metric, then one row per breakdown group and per week of
/// the trend. Cells a spreadsheet would run as formulas are quoted, as exports are.
pub fn to_csv(report: &PenetrationReport) -> String {
    let mut out = String::from("metric,by,key,population,penetrated,decided,pending,rate,target,gap\n");
    let mut row = |m: &MetricReport, by: &str, key: &str, g: &super::Tally, gap: Option<f64>| {
        let cells = [
            guard(&m.id),
            by.to_string(),
            guard(key),
            g.population.to_string(),
            g.penetrated.to_string(),
            g.decided.to_string(),
            g.pending.to_string(),
            g.rate.map(|r| format!("{r:.4}")).unwrap_or_default(),
            format!("{:.4}", m.target),
            gap.map(|r| format!("{r:.4}")).unwrap_or_default(),
        ];
        let quoted: Vec<String> =
            cells
                .iter()
                .map(|c| {
                    if c.contains([',', '"', '\n', '\r']) {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    }
                })
                .collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    };
    for m in &report.metrics {
        row(m, "total", "", &m.tally, m.tally.rate.map(|r| m.target - r));
        for b in &m.breakdowns {
            for g in &b.groups {
                row(m, dimension(b.by), &g.key, &g.tally, g.gap);
            }
        }
        for g in &m.trend {
            row(m, "trend", &g.key, &g.tally, g.gap);
        }
    }
    out
}

/// Text made safe for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

struct Words {
    title: &'static str,
    period: &'static str,
    target: &'static str,
    population: &'static str,
    penetrated: &'static str,
    decided: &'static str,
    pending: &'static str,
    fell_off: &'static str,
    nothing_fell: &'static str,
    trend: &'static str,
    by: &'static str,
    more: &'static str,
    note: &'static str,
}

const ZH: Words = Words {
    title: "行动穿透率",
    period: "统计期",
    target: "目标",
    population: "样本",
    penetrated: "穿透",
    decided: "已定",
    pending: "待定",
    fell_off: "掉在哪里",
    nothing_fell: "没有未穿透的实例",
    trend: "按周趋势（虚线为目标）",
    by: "按",
    more: "另有",
    note: "只根据事件日志计算：起点在统计期内的每个实例；穿透率 = 穿透 ÷ 已定。",
};

const EN: Words = Words {
    title: "Action penetration",
    period: "Period",
    target: "target",
    population: "population",
    penetrated: "penetrated",
    decided: "decided",
    pending: "pending",
    fell_off: "Where instances fell off the path",
    nothing_fell: "No instance fell off the path",
    trend: "Trend (dashed line: target)",
    by: "By ",
    more: "more not shown:",
    note: "Computed from the event log alone: every instance that started in the period; rate = penetrated / decided.",
};

const STYLE: &str =
    "body{font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei','WenQuanYi Micro Hei',sans-serif;\
margin:0;padding:16px;color:#1f2933;background:#f5f7fa}main{max-width:960px;margin:0 auto}\
h1{font-size:1.5rem;margin:0 0 4px}.sub{color:#52606d;margin:0 0 16px}\
section{background:#fff;border-radius:8px;padding:16px;margin:0 0 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}\
h2{font-size:1.15rem;margin:0 0 8px}h3{font-size:.95rem;margin:16px 0 6px;color:#3e4c59}\
.rate{font-size:2rem;font-weight:700}.ok{color:#1b873f}.bad{color:#c62828}\
.counts{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0;color:#52606d}.counts b{color:#1f2933}\
ol{margin:4px 0 0 20px;padding:0}svg{width:100%;max-width:640px;height:auto;display:block}.note{color:#7b8794;font-size:.8rem}";

/// The report as one self-contained HTML page in `lang`.
pub fn to_html(report: &PenetrationReport, lang: Lang) -> String {
    let w = if lang == Lang::Zh { &ZH } else { &EN };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{STYLE}</style></head><body><main><h1>{}</h1><p class=\"sub\">{} {} – {} · {}</p>",
        if lang == Lang::Zh { "zh-CN" } else { "en" },
        w.title,
        w.title,
        w.period,
        escape(&report.from),
        escape(&report.to),
        escape(&report.at),
    );
    for m in &report.metrics {
        metric(&mut out, m, w, lang);
    }
    let _ = write!(out, "<p class=\"note\">{}</p></main></body></html>", w.note);
    out
}

fn metric(out: &mut String, m: &MetricReport, w: &Words, lang: Lang) {
    let label = m.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| m.id.clone());
    let class = match m.tally.rate {
        Some(r) if r >= m.target => "ok",
        Some(_) => "bad",
        None => "",
    };
    let t = &m.tally;
    let _ = write!(
        out,
        "<section><h2>{}</h2><div><span class=\"rate {class}\">{}</span> {} {}</div>\
         <div class=\"counts\"><span>{} <b>{}</b></span><span>{} <b>{}</b></span>\
         <span>{} <b>{}</b></span><span>{} <b>{}</b></span></div>",
        escape(&label),
        percent(t.rate),
        w.target,
        percent(Some(m.target)),
        w.population,
        t.population,
        w.penetrated,
        t.penetrated,
        w.decided,
        t.decided,
        w.pending,
        t.pending,
    );
    let _ = write!(out, "<h3>{}</h3>", w.fell_off);
    if m.falloff.is_empty() {
        let _ = write!(out, "<p>{}</p>", w.nothing_fell);
    } else {
        out.push_str("<ol>");
        for f in m.falloff.iter().take(3) {
            let _ = write!(out, "<li>{} · {} · {}</li>", escape(&f.step), reason_in(f.reason, lang), f.count);
        }
        out.push_str("</ol>");
    }
    let _ = write!(out, "<h3>{}</h3>", w.trend);
    trend(out, &m.trend, m.target);
    for b in m.breakdowns.iter().filter(|b| !matches!(b.by, Dimension::Week | Dimension::Month)) {
        let _ = write!(out, "<h3>{}{}</h3>", w.by, dimension_in(b.by, lang));
        bars(out, &b.groups, m.target, w, b.by == Dimension::Member);
    }
    out.push_str("</section>");
}

/// The rate week by week as bars against the target's dashed line; a week with nothing decided
/// is left empty.
fn trend(out: &mut String, groups: &[Group], target: f64) {
    let (width, height, left, top, bottom) = (420.0, 160.0, 36.0, 10.0, 26.0);
    let plot = height - top - bottom;
    let n = groups.len().max(1) as f64;
    let slot = (width - left - 10.0) / n;
    let y = |r: f64| top + plot * (1.0 - r.clamp(0.0, 1.0));
    let _ = write!(out, "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"trend\">");
    for tick in [0.0, 0.5, 1.0] {
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#7b8794\">{:.0}%</text>",
            width - 10.0,
            left - 4.0,
            y(tick) + 4.0,
            tick * 100.0,
            y = y(tick),
        );
    }
    for (i, g) in groups.iter().enumerate() {
        let x = left + slot * i as f64;
        if let Some(r) = g.tally.rate {
            let colour = if r >= target { "#3ebd93" } else { "#ef8e8e" };
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} {}</title></rect>",
                x + slot * 0.15,
                y(r),
                slot * 0.7,
                top + plot - y(r),
                escape(&g.key),
                percent(Some(r)),
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#52606d\">{}</text>",
            x + slot / 2.0,
            height - 10.0,
            escape(g.key.rsplit('-').next().unwrap_or(&g.key)),
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{t:.1}\" y2=\"{t:.1}\" stroke=\"#1f2933\" stroke-dasharray=\"6 4\"/></svg>",
        width - 10.0,
        t = y(target),
    );
}

/// The fewest decided instances a member needs for a bar (or a place among the largest gaps),
/// when others have more.
pub const MIN_DECIDED: usize = 5;

/// The most common: up to this many bars, the worst first.
const MAX_BARS: usize = 15;

/// One horizontal bar per group, the furthest below target first, with the target line across.
fn bars(out: &mut String, groups: &[Group], target: f64, w: &Words, people: bool) {
    // Members with a handful of decided instances are noise beside the others: shown only when
    // nobody has more.
    let decided: Vec<&Group> = groups.iter().filter(|g| g.tally.rate.is_some()).collect();
    let sized: Vec<&Group> = decided.iter().copied().filter(|g| !people || g.tally.decided >= MIN_DECIDED).collect();
    let mut rows = if sized.is_empty() { decided } else { sized };
    rows.sort_by(|a, b| b.gap.partial_cmp(&a.gap).unwrap_or(std::cmp::Ordering::Equal).then(a.key.cmp(&b.key)));
    let hidden = rows.len().saturating_sub(MAX_BARS);
    rows.truncate(MAX_BARS);
    let (width, left, bar) = (420.0, 110.0, 20.0);
    let height = bar * rows.len() as f64 + 10.0;
    let span = width - left - 100.0;
    // The target line first, so the labels are drawn over it.
    let x = left + span * target;
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"bars\">\
         <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{height}\" stroke=\"#1f2933\" stroke-dasharray=\"6 4\"/>"
    );
    for (i, g) in rows.iter().enumerate() {
        let r = g.tally.rate.unwrap_or(0.0);
        let y = bar * i as f64 + 5.0;
        let colour = if r >= target { "#3ebd93" } else { "#ef8e8e" };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#1f2933\">{}</text>\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#52606d\">{} ({}/{})</text>",
            left - 6.0,
            y + 13.0,
            escape(&g.key),
            y + 2.0,
            span * r,
            bar - 4.0,
            left + span * r + 4.0,
            y + 13.0,
            percent(Some(r)),
            g.tally.penetrated,
            g.tally.decided,
        );
    }
    out.push_str("</svg>");
    if hidden > 0 {
        let _ = write!(out, "<p class=\"note\">{} {hidden}</p>", w.more);
    }
}
