"""The model card (a bundle's README.md), rendered from its metadata.

Written for a clinician or a reviewer who reads it once: what the models are
for, what they must not be used for, what they learned from, how well they do
on data they never saw (with 95% CIs), and the notice every output repeats.
"""

from __future__ import annotations

import json
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metric_rows(metrics: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| metric | value | 95% CI | n | method | note |", "|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        ci = (
            "–"
            if m.get("ci_low") is None or m.get("ci_high") is None
            else f"{_fmt(m['ci_low'])}–{_fmt(m['ci_high'])}"
        )
        rows.append(
            f"| {name} | {_fmt(m.get('value'))} | {ci} | {_fmt(m.get('n'))} | "
            f"{m.get('method') or '–'} | {m.get('note') or ''} |"
        )
    return rows


def _text(value: Any) -> str:
    """A metadata value as card text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return "```json\n" + json.dumps(value, indent=2) + "\n```"


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()


def _training(training: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    commands = training.get("commands") or training.get("command")
    if commands:
        commands = [commands] if isinstance(commands, str) else list(commands)
        lines += [
            "Commands (from a clone of the repository):",
            "",
            "```bash",
            *map(str, commands),
            "```",
        ]
    facts = [k for k in training if k not in ("command", "commands", "config", "configs")]
    if lines and facts:
        lines.append("")
    for key in facts:
        value = training[key]
        shown = value if isinstance(value, str | int | float) else json.dumps(value)
        lines.append(f"- {key}: {shown}")
    configs = training.get("configs") or training.get("config")
    if isinstance(configs, dict):
        for name, content in configs.items():
            text = content if isinstance(content, str) else _yaml(content)
            lines += ["", f"Config `{name}`:", "", "```yaml", text.rstrip(), "```"]
    elif configs:
        lines += ["", f"Config: {configs}"]
    return lines


def _groups_line(groups: list[Any]) -> str:
    shown = ", ".join(str(g) for g in groups[:40])
    more = f" … ({len(groups)} in all)" if len(groups) > 40 else ""
    return f"{len(groups)} groups, never seen in training: {shown}{more}"


def _heldout(groups: Any) -> list[str]:
    if groups is None:
        return ["Not given."]
    if isinstance(groups, list):
        return [_groups_line(groups)]
    if isinstance(groups, dict):
        lines = [
            f"- {k}: {v if isinstance(v, str | int | float) else json.dumps(v)}"
            for k, v in groups.items()
            if k != "groups"
        ]
        if isinstance(groups.get("groups"), list):
            lines.append(f"- {_groups_line(groups['groups'])}")
        return lines
    return [_text(groups)]


def _still_section(still: Any) -> list[str]:
    """The still classifier's section (bundles since sonorisk-busi 1.3.0)."""
    if not isinstance(still, dict) or not still:
        return []
    lines = ["", "## Still classifier", ""]
    if still.get("summary"):
        lines += [str(still["summary"]), ""]
    rows = still.get("comparison") or []
    if rows:
        lines += [
            "Lesion crops of the held-out groups (ground-truth boxes); DeLong 95% CI; "
            "model selection on training groups only:",
            "",
            "| model | stored | cross-validated AUC (training groups) | held-out AUC "
            "| 95% CI | n (malignant) | shipped |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            ci = "–" if r.get("ci_low") is None else f"{_fmt(r['ci_low'])}–{_fmt(r['ci_high'])}"
            lines.append(
                f"| {r['model']} | {r.get('stored') or '–'} | {_fmt(r.get('cv_auc'))} "
                f"| {_fmt(r.get('auc'))} | {ci} | {r.get('n')} "
                f"({r.get('n_malignant')}) | {r.get('shipped') or 'no'} |"
            )
    for key, value in still.items():
        if key not in ("summary", "comparison"):
            shown = value if isinstance(value, str | int | float) else json.dumps(value)
            lines.append(f"- {key}: {shown}")
    return lines


def _settings_section(
    title: str, intro: str, key: str, settings: dict[str, Any] | None
) -> list[str]:
    """A card section quoting the ``pipeline.<key>`` settings as YAML ([] when absent)."""
    if not settings:
        return []
    return ["", f"## {title}", "", intro, "", "```yaml", _yaml({key: settings}).rstrip(), "```"]


def render_card(metadata: dict[str, Any]) -> str:
    name, version = metadata["name"], metadata["version"]
    data = metadata["training_data"]
    lines = [f"# {name} {version}", "", f"> {metadata['notice']}", ""]
    if metadata.get("description"):
        lines += [str(metadata["description"]), ""]
    lines += [
        f"Task: {metadata['task']}",
        "",
        "## Intended use",
        "",
        _text(metadata["intended_use"]),
        "",
        "## Limitations",
        "",
    ]
    lines += [f"- {item}" for item in metadata["limitations"]]
    lines += ["", "## Models", "", "| role | file | what |", "|---|---|---|"]
    for role, model in metadata["models"].items():
        what = ", ".join(
            f"{k}: {v}"
            for k, v in model.items()
            if k not in ("file", "weights_init") and v not in (None, {}, [])
        )
        lines.append(f"| {role} | `{model['file']}` | {what} |")
    lines += [
        "",
        f"Weights stored as {metadata['weights']['stored_dtype']}, computed in "
        f"{metadata['weights']['loaded_dtype']}.",
        "",
        "## Training data",
        "",
        _text(data["description"]),
        "",
        f"- Licence: {data['licence']}",
        f"- Citation: {data['citation']}",
    ]
    lines += [
        f"- {k}: {_text(v)}"
        for k, v in data.items()
        if k not in ("description", "licence", "citation")
    ]
    lines += ["", "## Training", ""] + (
        _training(metadata.get("training") or {}) or ["Not recorded."]
    )
    lines += ["", "## Evaluation", "", "Held-out groups:", ""]
    lines += _heldout(metadata.get("heldout_groups"))
    lines += [""] + (
        metric_rows(metadata["metrics"])
        if metadata.get("metrics")
        else ["No held-out figures recorded."]
    )
    pipeline = metadata.get("pipeline") or {}
    lines += _settings_section(
        "Lesion rules",
        "The figures above were measured with these `pipeline.lesions` settings "
        "(sonorisk's defaults; docs/end-to-end.md says how they were chosen):",
        "lesions",
        pipeline.get("lesions"),
    )
    detector = pipeline.get("detector")
    lines += _settings_section(
        "Detector settings",
        "Runs with this bundle use these detector settings unless told otherwise "
        "(`--detector-tta` / `--no-detector-tta`), and its figures were measured with them"
        + (
            ": `tta_hflip` runs each frame and its mirror image and fuses the boxes "
            "(twice the detector time)"
            if detector and detector.get("tta_hflip")
            else ""
        )
        + ":",
        "detector",
        detector,
    )
    lines += _still_section(metadata.get("still_classifier"))
    lines += [
        "",
        "## Input and output",
        "",
        f"- Input: {_text(metadata['input_format'])}",
        f"- Output: {_text(metadata['output_format'])}",
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    for file, entry in sorted(metadata.get("files", {}).items()):
        lines.append(f"| `{file}` | {entry['bytes']} | `{entry['sha256']}` |")
    lines += [
        "",
        "`metadata.json` lists the sha256 of every file including this card; "
        "`sonorisk models verify` checks them.",
        "",
        "## Package versions",
        "",
    ]
    lines += [f"- {k} {v}" for k, v in metadata["package_versions"].items()]
    lines += [
        "",
        "## Licence",
        "",
        str(metadata["licence"]),
        "",
        "## Notice",
        "",
        metadata["notice"],
        "",
    ]
    return "\n".join(lines)
