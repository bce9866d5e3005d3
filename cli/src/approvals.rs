//! The approval commands: `approvals` (what waits), `approve`, `reject`, `recall`, and after
//! approval the customer's signature (`sign-link`, `sign`) and the record as a PDF (`pdf`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::context::show;
use crate::render::local;
use crate::{Context, UserError};

/// The approval commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Approval steps waiting for someone (for one member with --as).
    Approvals {
        /// Only what waits for this member.
        #[arg(long = "as")]
        member: Option<String>,
    },
    /// Approve the step in hand of a record in approval.
    Approve {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The approver.
        #[arg(long = "as")]
        actor: String,
        /// A comment for the trail.
        #[arg(long)]
        comment: Option<String>,
        /// Break-glass, for a member of the chain's override_roles: push the step through,
        /// setting aside the separation of duties, with this reason (audited).
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
    },
    /// Reject a record in approval, with a comment saying why.
    Reject {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The approver.
        #[arg(long = "as")]
        actor: String,
        /// Why.
        #[arg(long)]
        comment: String,
    },
    /// Make a single-use link for the customer to sign an approved record (prints the URL).
    SignLink {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// Where the signing page is served.
        #[arg(long, env = "CLOSELOOP_PUBLIC_URL", default_value = "http://localhost:8080")]
        base: String,
        /// The folder for the QR code of the link (ID-sign.svg and ID-sign.png).
        #[arg(long, default_value = ".")]
        qr_dir: PathBuf,
        /// Also print the QR code in the terminal.
        #[arg(long)]
        terminal: bool,
        /// Also send it to the customer (the signature's contact field) on this SMS or email
        /// channel, as the app's `sign_request` message.
        #[arg(long)]
        send: Option<String>,
        /// Who makes it.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Sign with a link's token (or its URL), as the customer.
    Sign {
        /// The token, or the whole URL.
        token: String,
        /// The signer's name.
        #[arg(long)]
        name: String,
    },
    /// Write a record (a quote) as a PDF: fields, lines, totals, the serial number as a
    /// watermark, and the signature block once signed.
    Pdf {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// A font that covers Chinese (TrueType/OpenType, or a .ttc collection).
        #[arg(long, env = "CLOSELOOP_CJK_FONT")]
        font: Option<PathBuf>,
        /// Which face of a font collection.
        #[arg(long, default_value_t = 0)]
        font_index: u32,
    },
    /// Withdraw a record from approval (its submitter or owner).
    Recall {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// Who recalls it.
        #[arg(long = "as")]
        actor: String,
    },
}

/// Runs one approval command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    match cmd {
        Command::Approvals { member } => approvals(ctx, member.as_deref()),
        Command::Approve { form, id, actor, comment, override_reason } => {
            decide(ctx, form, id, actor, "approve", comment.as_deref(), override_reason.as_deref())
        }
        Command::Reject { form, id, actor, comment } => decide(ctx, form, id, actor, "reject", Some(comment), None),
        Command::Recall { form, id, actor } => decide(ctx, form, id, actor, "recall", None, None),
        Command::SignLink { form, id, base, qr_dir, terminal, send, actor } => {
            sign_link(ctx, form, id, base, qr_dir, (*terminal, send.as_deref()), actor)
        }
        Command::Sign { token, name } => sign(ctx, token, name),
        Command::Pdf { form, id, out, font, font_index } => pdf(ctx, form, id, out, font.as_deref(), *font_index),
    }
}

/// `closeloop approvals [--as MEMBER]`.
pub fn approvals(ctx: &Context, member: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let waiting = rt.approvals(member).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &waiting, || {
        let mut lines: Vec<String> = waiting
            .iter()
            .map(|w| {
                let mut line = format!(
                    "{:<18} {} / {}: {} of {} approvals; approvers {}{}{}",
                    w.record,
                    w.chain,
                    w.step,
                    w.approved_by.len(),
                    w.needed,
                    w.approvers.join(", "),
                    w.due_at
                        .as_deref()
                        .map(|d| format!("; due {}", local(d, &rt.zone_of(Some(&w.form)))))
                        .unwrap_or_default(),
                    w.on_behalf_of.as_deref().map(|a| format!("; you decide for {a}, who is away")).unwrap_or_default()
                );
                for s in &w.show {
                    line.push_str(&format!("\n    {}: {}", s.label, if s.text.is_empty() { "—" } else { &s.text }));
                }
                line
            })
            .collect();
        lines.push(format!("{} step(s) waiting", waiting.len()));
        lines.join("\n")
    })
}

/// `closeloop approve|reject|recall FORM ID --as MEMBER`, and `approve --override REASON`
/// (break-glass).
pub fn decide(
    ctx: &Context,
    form: &str,
    id: &str,
    actor: &str,
    decision: &str,
    comment: Option<&str>,
    override_reason: Option<&str>,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let view = match (decision, override_reason) {
        ("approve", Some(reason)) => rt.approve_override(form, id, actor, reason, comment),
        ("approve", None) => rt.approve(form, id, actor, comment),
        ("reject", _) => rt.reject(form, id, actor, comment.unwrap_or_default()),
        _ => rt.recall(form, id, actor),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &view, || {
        let mut lines = vec![format!("{id}: {} {} (version {})", view.chain, view.status, view.version)];
        for s in &view.steps {
            let note = s.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default();
            lines.push(format!("  {:<14} {:<9}{note}", s.step, s.status));
        }
        lines.join("\n")
    })
}

/// `closeloop sign-link FORM ID`: the URL, and its QR code as SVG and PNG (and in the terminal).
pub fn sign_link(
    ctx: &Context,
    form: &str,
    id: &str,
    base: &str,
    qr_dir: &std::path::Path,
    (terminal, send): (bool, Option<&str>),
    actor: &str,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let (link, sent_to) = match send {
        Some(channel) => {
            let (link, to) = rt.send_sign_link(form, id, base, channel, actor).map_err(|e| ctx.engine_error(e))?;
            (link, Some(to))
        }
        None => (rt.sign_link(form, id, base, actor).map_err(|e| ctx.engine_error(e))?, None),
    };
    let svg = closeloop::qr::svg(&link.url).map_err(|e| UserError(e.to_string()))?;
    let png = closeloop::qr::png(&link.url, 8).map_err(|e| UserError(e.to_string()))?;
    std::fs::create_dir_all(qr_dir).map_err(|e| UserError(format!("cannot create {}: {e}", qr_dir.display())))?;
    let (svg_path, png_path) = (qr_dir.join(format!("{id}-sign.svg")), qr_dir.join(format!("{id}-sign.png")));
    std::fs::write(&svg_path, svg).map_err(|e| UserError(format!("cannot write {}: {e}", svg_path.display())))?;
    std::fs::write(&png_path, png).map_err(|e| UserError(format!("cannot write {}: {e}", png_path.display())))?;
    let art = if terminal {
        closeloop::qr::terminal(&link.url).map_err(|e| UserError(e.to_string()))?
    } else {
        String::new()
    };
    let value = serde_json::json!({"link": link, "qr": {"svg": svg_path, "png": png_path}, "sent_to": sent_to});
    show(ctx, &value, || {
        let mut text = format!(
            "{}\n  signs {} version {} (hash {}…), once, until {}\n  QR code: {} and {}",
            link.url,
            link.record,
            link.version,
            link.version_hash.get(..12).unwrap_or(&link.version_hash),
            local(&link.expires_at, &rt.zone_of(Some(form))),
            svg_path.display(),
            png_path.display()
        );
        if let Some(to) = &sent_to {
            text.push_str(&format!("\n  sent to {to} (the outbox delivers it)"));
        }
        if terminal {
            text.push('\n');
            text.push_str(&art);
        }
        text
    })
}

/// `closeloop sign TOKEN --name NAME`.
pub fn sign(ctx: &Context, token: &str, name: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let signed = rt.sign(token, name).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &signed, || {
        format!(
            "{} version {} signed by {} at {} (hash {})",
            signed.record,
            signed.version,
            signed.signer,
            local(&signed.at, &rt.zone_of(Some(&signed.form))),
            signed.version_hash
        )
    })
}

/// Where CJK fonts usually are (Debian's fonts-wqy-microhei, fonts-noto-cjk, fonts-droid-fallback).
const CJK_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

/// The first CJK font found where fonts usually are.
pub(crate) fn cjk_font() -> Option<std::path::PathBuf> {
    CJK_FONTS.iter().map(std::path::PathBuf::from).find(|p| p.is_file())
}

/// `closeloop pdf FORM ID --out FILE`.
pub fn pdf(
    ctx: &Context,
    form: &str,
    id: &str,
    out: &std::path::Path,
    font: Option<&std::path::Path>,
    index: u32,
) -> Result<ExitCode, UserError> {
    let path = match font {
        Some(p) => p.to_path_buf(),
        None => cjk_font().ok_or_else(|| {
            UserError(
                "no font that covers Chinese was found: install one (`apt-get install fonts-wqy-microhei`) or pass --font PATH".into(),
            )
        })?,
    };
    let bytes = std::fs::read(&path).map_err(|e| UserError(format!("cannot read the font {}: {e}", path.display())))?;
    let rt = ctx.runtime()?;
    let pdf = rt.record_pdf(form, id, bytes, index).map_err(|e| ctx.engine_error(e))?;
    std::fs::write(out, &pdf).map_err(|e| UserError(format!("cannot write {}: {e}", out.display())))?;
    let report = serde_json::json!({"record": id, "out": out, "bytes": pdf.len(), "font": path});
    show(ctx, &report, || format!("wrote {} ({} bytes, font {})", out.display(), pdf.len(), path.display()))
}
