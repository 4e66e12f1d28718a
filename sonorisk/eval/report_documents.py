"""``report.md`` and ``report.html``: the header, every table, every figure."""

from __future__ import annotations

import html

from sonorisk.eval.report_context import NOT_PROBABILITIES, ReportContext


def _html_line(line: str) -> str:
    """One Markdown header line as HTML (title, bold label, bullet, warning)."""
    text = html.escape(line.lstrip("#- ").replace("**", "").replace("`", ""))
    if line.startswith("# "):
        return f"<h1>{text}</h1>"
    if "SYNTHETIC/DEMO" in line or NOT_PROBABILITIES in line:
        return f"<p class='warn'>{text}</p>"
    return f"<p>{text}</p>"


def write_documents(ctx: ReportContext) -> None:
    out_dir, tables, figs, cfg, truth = ctx.out_dir, ctx.tables, ctx.figs, ctx.cfg, ctx.truth
    range_warnings, provenance, models = ctx.range_warnings, ctx.provenance, ctx.models
    op, ref = ctx.point, ctx.ref
    n_pos = int(truth["truth"].sum())
    header = [
        "# sonorisk evaluation report",
        "",
        "Research software output, not a medical device; numbers describe the inputs below only.",
        "",
    ]
    if range_warnings:
        header += ["**Warnings:**", ""] + [f"- {w}" for w in range_warnings] + [""]
    if provenance:
        header += ["**Provenance notes:**", ""] + [f"- {w}" for w in provenance] + [""]
    header += [
        "- Inputs: " + ", ".join(f"{k} = `{v}`" for k, v in cfg.inputs.items())
        if cfg.inputs
        else "- Inputs: tables passed in memory",
        f"- Cases: {len(truth)} ({n_pos} malignant, {len(truth) - n_pos} benign)",
        f"- Models: {', '.join(models)}; reference: {ref}",
        f"- Operating point of {ref}: threshold {op.threshold:.4f} — {op.rule}",
        f"- Bootstrap: {cfg.n_bootstrap} resamples, seed {cfg.seed}; "
        f"confidence level {cfg.level:g}",
        "",
    ]
    md = "\n".join(header) + "\n" + "\n".join(t.to_markdown() for t in tables.values())
    md += (
        "\n## Figures\n\n" + "\n".join(f"![{k}](figures/{p.name})" for k, p in figs.items()) + "\n"
    )
    (out_dir / "report.md").write_text(md)
    body = "".join(_html_line(line) for line in header if line.strip())
    body += "".join(t.to_html() for t in tables.values())
    body += "".join(
        f"<h3>{html.escape(k)}</h3><img src='figures/{p.name}' width='560'>"
        for k, p in figs.items()
    )
    style = (
        "body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:12px;margin-bottom:0.5em}"
        "td,th{border:1px solid #ccc;padding:3px 6px}.note{font-size:11px;color:#555}"
        ".warn{color:#b00000;font-weight:bold}"
    )
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>sonorisk evaluation report"
        f"</title><style>{style}</style></head><body>{body}</body></html>"
    )
