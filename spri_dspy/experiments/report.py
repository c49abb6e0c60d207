"""One self-contained HTML page for a batch run or an ablation, to browse after the run.

``write_report(FOLDER)`` reads what ``spri generate``/``spri judge`` (``results.jsonl``,
``failures.jsonl``, ``summary.json``, ``run.json``) or ``spri ablate`` (``ablation.csv``, its
PNGs) wrote, and writes ``FOLDER/report.html``: a sortable results table whose rows expand to
each input's texts and rounds (score, feedback, accepted), histograms of final scores and
rounds, and LM calls and tokens per stage and model. Everything is inline (styles, script,
images as data URLs) and a Content-Security-Policy forbids any request, so the page opens
offline and never calls out. Every text from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import csv
import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from spri_dspy.runtime.batch import RESULTS, read_output
from spri_dspy.runtime.files import write_atomic

REPORT = "report.html"
_PLOTS = ("comparison.png", "metric_by_variant.png", "quality_vs_cost.png", "pareto_front.png", "param_importances.png")


def write_report(folder: str | os.PathLike, path: str | os.PathLike | None = None, *, max_rows: int = 2000) -> Path:
    """Write the report of the batch run or ablation in ``folder`` to ``path`` (default
    ``folder/report.html``); at most ``max_rows`` inputs are listed (the figures count them all).
    ValueError when the folder holds neither."""
    folder = Path(folder)
    if (folder / RESULTS).is_file():
        title, body = f"spri batch: {folder.name}", _batch(folder, max_rows)
    elif (folder / "ablation.csv").is_file():
        title, body = f"spri ablation: {folder.name}", _ablation(folder)
    else:
        raise ValueError(f"{folder} holds no {RESULTS} (a 'spri generate/judge' run) and no ablation.csv "
                         "(a 'spri ablate' run)")
    target = Path(path) if path is not None else folder / REPORT
    write_atomic(target, _page(title, body))
    return target


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _final_scores(trace: list[dict]) -> dict[str, Any]:
    """The last round's score of each stage, and the number of rounds of each."""
    scores, rounds = {}, Counter()
    for r in trace or []:
        scores[r.get("stage")] = r.get("score")
        rounds[r.get("stage")] += 1
    return {"scores": scores, "rounds": dict(rounds)}


def _batch(folder: Path, max_rows: int) -> str:
    run = read_output(folder)
    records, failures, summary, identity = run.records, run.failures, run.summary, run.run
    stages = list(dict.fromkeys(r.get("stage") for rec in records for r in rec.get("output", {}).get("trace") or []))
    finals = [_final_scores(rec.get("output", {}).get("trace")) for rec in records]
    parts = [_overview(folder, summary, identity, len(records), len(failures), run.not_run)]
    parts.append(_usage(summary))
    charts = []
    for stage in stages:
        charts.append(_histogram(f"final {stage} score", Counter(f["scores"].get(stage) for f in finals
                                                                 if f["scores"].get(stage) is not None),
                                 [1, 2, 3, 4, 5]))
        rounds = Counter(f["rounds"].get(stage, 0) for f in finals)
        charts.append(_histogram(f"{stage} rounds", rounds, list(range(min(min(rounds), 1), max(rounds) + 1))))
    if charts:
        parts.append(f'<h2>Scores and rounds</h2><div class="charts">{"".join(charts)}</div>')
    parts.append(_results_table(records[:max_rows], finals, stages, len(records)))
    if failures:
        items = "".join(f"<tr><td>{_e(i)}</td><td>{_e(error)}</td></tr>" for i, error in failures.items())
        parts.append(f"<h2>Failed inputs ({len(failures)})</h2><p>Left without a result; the next run of the same "
                     f"command retries them.</p><table><tr><th>id</th><th>error</th></tr>{items}</table>")
    return "".join(parts)


def _overview(folder: Path, summary: dict, identity: dict, results: int, failed: int, not_run: int) -> str:
    models = ", ".join(f"{_e(step)}: <code>{_e((m or {}).get('model'))}</code>"
                       for step, m in (identity.get("models") or {}).items() if m)
    settings = ", ".join(f"{_e(k)}={_e(json.dumps(v))}" for k, v in (identity.get("settings") or {}).items())
    rows = results + failed + not_run
    facts = [("program", _e(identity.get("program", "?"))), ("models", models or "?"), ("settings", settings or "-"),
             ("inputs", f"{results} with a result, {failed} failed, {not_run} not run, of {rows}"),
             ("LM calls", f"{summary.get('lm_calls_needed', '?')} needed, {summary.get('lm_calls', '?')} made "
                          "(the rest answered by DSPy's cache), in the last run"),
             ("tokens", f"{summary.get('prompt_tokens', 0)} prompt + {summary.get('completion_tokens', 0)} completion "
                        "(of the calls made)")]
    return f"<h1>{_e(folder.name)}</h1><dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"


def _usage(summary: dict) -> str:
    blocks = []
    for title, table in (("stage", summary.get("by_stage") or {}), ("model", summary.get("by_model") or {})):
        if not table:
            continue
        rows = "".join(f"<tr><td>{_e(key)}</td><td>{c.get('calls_needed', 0)}</td><td>{c.get('calls', 0)}</td>"
                       f"<td>{c.get('prompt_tokens', 0)}</td><td>{c.get('completion_tokens', 0)}</td></tr>"
                       for key, c in table.items())
        blocks.append(f"<table><tr><th>{title}</th><th>LM calls needed</th><th>made</th><th>prompt tokens</th>"
                      f"<th>completion tokens</th></tr>{rows}</table>")
    return "<h2>LM calls and tokens</h2>" + "".join(blocks) if blocks else ""


def _histogram(title: str, counts: Counter, bins: list) -> str:
    """A small inline SVG bar chart of ``counts`` over ``bins``."""
    width, height, pad = 240, 120, 20
    top = max([counts.get(b, 0) for b in bins] + [1])
    step = (width - 2 * pad) / max(len(bins), 1)
    bars = []
    for i, b in enumerate(bins):
        n = counts.get(b, 0)
        h = (height - 2 * pad) * n / top
        x, y = pad + i * step, height - pad - h
        bars.append(f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{step - 4:.1f}" height="{h:.1f}" fill="#4c72b0">'
                    f"<title>{_e(b)}: {n}</title></rect>"
                    f'<text x="{x + step / 2:.1f}" y="{height - 5}" text-anchor="middle">{_e(b)}</text>'
                    f'<text x="{x + step / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{n}</text>')
    return (f'<figure><svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{_e(title)}">{"".join(bars)}</svg><figcaption>{_e(title)}</figcaption></figure>')


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _results_table(records: list[dict], finals: list[dict], stages: list[str], total: int) -> str:
    head = ["id", "input"] + [f"{s} score" for s in stages] + [f"{s} rounds" for s in stages] + ["LM calls", "details"]
    rows = []
    for record, final in zip(records, finals):
        inputs, output = record.get("input", {}), record.get("output", {})
        first = next((v for v in inputs.values() if isinstance(v, str)), "")
        cells = [f'<td data-sort="{_e(record.get("index", ""))}">{_e(record.get("id"))}</td>',
                 f"<td>{_e(first[:120])}{'…' if len(first) > 120 else ''}</td>"]
        for s in stages:
            score = final["scores"].get(s)
            cells.append(f'<td data-sort="{"" if score is None else score}">{_e("-" if score is None else score)}</td>')
        for s in stages:
            cells.append(f'<td data-sort="{final["rounds"].get(s, 0)}">{final["rounds"].get(s, 0)}</td>')
        cells.append(f'<td data-sort="{record.get("lm_calls") or 0}">{_e(record.get("lm_calls"))}</td>')
        cells.append(f"<td>{_details({**inputs, **record.get('columns', {})}, output)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    shown = "" if len(records) == total else f" (the first {len(records)} of {total})"
    header = "".join(f'<th data-column="{i}" title="sort">{_e(h)}</th>' for i, h in enumerate(head))
    return (f"<h2>Results{shown}</h2><p>Click a column's heading to sort by it; open an input's details for its "
            f"texts and rounds.</p><table id=\"results\"><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _details(inputs: dict, output: dict) -> str:
    blocks = [f"<h4>{_e(k)}</h4><pre>{_e(_text(v))}</pre>" for k, v in inputs.items() if v is not None]
    blocks += [f"<h4>{_e(k)}</h4><pre>{_e(_text(v))}</pre>" for k, v in output.items()
               if k not in ("trace", "seeds") and v is not None]
    rounds = "".join(
        f"<tr><td>{_e(r.get('stage'))}</td><td>{_e(r.get('round'))}</td><td>{_e(r.get('score'))}</td>"
        f"<td>{'yes' if r.get('accepted') else 'no'}</td><td>{_e(r.get('error') or r.get('feedback'))}</td>"
        f"<td><pre>{_e(r.get('text'))}</pre></td></tr>" for r in output.get("trace") or [])
    if rounds:
        blocks.append("<h4>rounds</h4><table class=\"rounds\"><tr><th>stage</th><th>round</th><th>score</th>"
                      f"<th>accepted</th><th>feedback</th><th>text critiqued</th></tr>{rounds}</table>")
    return f"<details><summary>show</summary>{''.join(blocks)}</details>"


def _ablation(folder: Path) -> str:
    with (folder / "ablation.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = ["variant", "n", "failed", "metric", "ci_low", "ci_high", "lm_calls_needed_per_input",
               "lm_calls_per_input",  # the same figure, as folders written before it was renamed call it
               "lm_calls_made_per_input", "tokens_per_input", "repeats", "repeat_spread", "failure_reasons"]
    columns = [c for c in columns if rows and c in rows[0]
               and (c not in ("repeats", "repeat_spread") or any(r.get("repeats", "1") != "1" for r in rows))]
    header = "".join(f'<th data-column="{i}" title="sort">{_e(c)}</th>' for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f'<td data-sort="{_e(r[c])}">{_e(_round(r[c]))}</td>' for c in columns) + "</tr>"
                   for r in rows)
    markdown = (folder / "ablation.md").read_text(encoding="utf-8") if (folder / "ablation.md").is_file() else ""
    metric = markdown.splitlines()[0] if markdown.startswith("Metric:") else ""
    images = "".join(
        f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{base64.b64encode((folder / name).read_bytes()).decode()}">'
        f"<figcaption>{_e(name)}</figcaption></figure>" for name in _PLOTS if (folder / name).is_file())
    return (f"<h1>{_e(folder.name)}</h1><p>{_e(metric)}</p><h2>Variants</h2><p>Click a column's heading to sort by it."
            f'</p><table id="results"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'
            f'{_comparison(folder)}<h2>Plots</h2><div class="charts">{images}</div>')


def _comparison(folder: Path) -> str:
    """The paired table of ``comparison.csv``, if the ablation had a baseline (the forest plot is with the plots)."""
    if not (folder / "comparison.csv").is_file():
        return ""
    with (folder / "comparison.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return ""
    columns = ["variant", "group", "n", "mean_difference", "ci_low", "ci_high", "p_value", "p_holm", "effect_size",
               "repeat_spread", "unpaired"]
    columns = [c for c in columns if c != "repeat_spread" or any(r.get(c) not in (None, "", "nan") for r in rows)]
    header = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(_round(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows)
    return (f"<h2>Against the baseline: {_e(rows[0]['baseline'])}</h2><p>Mean difference (variant - baseline) over the "
            "inputs both finished, its 95% paired-bootstrap interval, a two-sided sign-flip permutation p, the same "
            "Holm-adjusted over the variants, Cohen's d_z, and the inputs left out (unpaired). The forest plot "
            "(comparison.png) shows each difference with its interval, the baseline at 0."
            f'</p><table class="comparison"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>')


def _round(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.3f}"


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left}
th[data-column]{cursor:pointer;background:#f2f4f8;user-select:none}th[data-column]:hover{background:#e2e8f4}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
pre{white-space:pre-wrap;margin:0;max-width:70em}dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}
dt{font-weight:600}.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}svg text{font-size:10px}
img{max-width:100%}details summary{cursor:pointer;color:#2a5bd7}table.rounds td{font-size:12px}
"""

_SCRIPT = """
document.querySelectorAll("table#results th[data-column]").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], column = Number(th.dataset.column);
    var ascending = !th.classList.contains("asc");
    table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(ascending ? "asc" : "desc");
    var key = function (row) {
      var cell = row.cells[column], value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
      var number = parseFloat(value);
      return value !== "" && !isNaN(number) && isFinite(value) ? number : value.toLowerCase();
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), order;
      if (typeof x === typeof y) { order = x < y ? -1 : x > y ? 1 : 0; } else { order = typeof x === "number" ? -1 : 1; }
      return ascending ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


# Only the page's own script may run (its hash), so escaping is not the only barrier against a text that holds
# markup; styles and images are inline too, and nothing may be fetched.
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode()


def _page(title: str, body: str) -> str:
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src '{_SCRIPT_HASH}'; img-src data:"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}<script>{_SCRIPT}</script></body></html>\n")
