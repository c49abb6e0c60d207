"""Recompute the paper's reported figures from recorded runs laid out like the released data.

``DIR/reappraisal/<model>/<variant>/eval-1_standard_alignment.jsonl`` and
``eval-2_empathy.jsonl`` hold the GPT-4 judge's raw outputs (alignment as
``<score>N</score><rationale>...``, empathy as a bare number); their means are
the paper's Table 1. ``DIR/biggen-judgements/<model>/<variant>.jsonl`` hold a
judge's ``evaluator_LM-score`` beside ``human_score`` per ``capability``; their
per-capability Pearson, averaged, is Table 2. ``DIR/pairwise/<model>/<variant>.jsonl`` hold
pairwise verdicts beside human preference labels (flat rows with ``verdict``, ``label`` and
``capability``, or the ``results.jsonl`` of ``spri judge --pairwise`` with the label as a carried
column); their accuracy and Cohen's kappa per capability, averaged. Models and variants are discovered,
never assumed. Rows that cannot be used are counted and reported, with file and line.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spri_dspy.core.data import jsonl_lines
from spri_dspy.experiments.metrics.agreement import agreement_by_group, preference_agreement, preference_rows

ALIGNMENT_FILE = "eval-1_standard_alignment.jsonl"
EMPATHY_FILE = "eval-2_empathy.jsonl"
RAW_OUTPUT_PREFIX = "evaluation_raw_output"
# Historical judge text is free-form: the paper's judge wrote "<score>8</score>" and sometimes "<score>[8]</score>".
_ALIGNMENT = re.compile(r"<score>\s*\[?\s*(\d+)\s*\]?\s*</score>")
_EMPATHY = re.compile(r"\s*\[?\s*(\d+)\s*\]?\s*")


@dataclass
class Row:
    """One model and variant's recomputed figures, with the problems met on the way."""

    task: str
    model: str
    variant: str
    n: int = 0
    figures: dict[str, float | None] = field(default_factory=dict)
    per_capability: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, NaN written as None, for JSON output."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _read_jsonl(path: Path, row: Row) -> list[tuple[int, dict]]:
    records = []
    for line, record in jsonl_lines(path):
        if isinstance(record, json.JSONDecodeError):
            row.problems.append(f"{path}:{line}: not valid JSON ({record.msg})")
        elif not isinstance(record, dict):
            row.problems.append(f"{path}:{line}: not a JSON object")
        else:
            records.append((line, record))
    return records


def _judge_scores(path: Path, pattern: re.Pattern, whole: bool, scale: range, row: Row, label: str) -> list[int]:
    """The judge's scores in one file; ``whole``: the raw output must be the score and nothing else."""
    scores, problems_before = [], len(row.problems)
    for line, record in _read_jsonl(path, row):
        keys = [k for k in record if k.startswith(RAW_OUTPUT_PREFIX)]
        if len(keys) != 1:
            row.problems.append(f"{path}:{line}: expected one {RAW_OUTPUT_PREFIX}* field, found {len(keys)}")
            continue
        raw = record[keys[0]]
        match = (pattern.search if whole is False else pattern.fullmatch)(raw) if isinstance(raw, str) else None
        score = int(match.group(1)) if match else None
        if score not in scale:
            row.problems.append(f"{path}:{line}: no {label} score in {scale.start}..{scale.stop - 1} in {str(raw)[:40]!r}")
            continue
        scores.append(score)
    row.counts[f"{label}_malformed"] = len(row.problems) - problems_before
    return scores


def reappraisal_row(model: str, variant: str, folder: Path) -> Row:
    """Mean alignment (1-10) and mean empathy (1-5) of one recorded reappraisal run."""
    row = Row("reappraisal", model, variant)
    for label, name, pattern, whole, scale in (("alignment", ALIGNMENT_FILE, _ALIGNMENT, False, range(1, 11)),
                                               ("empathy", EMPATHY_FILE, _EMPATHY, True, range(1, 6))):
        path = folder / name
        if not path.is_file():
            row.figures[label] = None
            row.problems.append(f"{path}: missing")
            continue
        scores = _judge_scores(path, pattern, whole, scale, row, label)
        row.figures[label] = sum(scores) / len(scores) if scores else None
        row.counts[f"{label}_scored"] = len(scores)
        row.n = max(row.n, len(scores))
    return row


def judge_row(model: str, variant: str, path: Path) -> Row:
    """Agreement of one recorded judge run with human scores, per capability and averaged."""
    row = Row("judge", model, variant)
    triples, missing, out_of_range = [], 0, 0
    for line, record in _read_jsonl(path, row):
        capability, human, score = record.get("capability"), record.get("human_score"), record.get("evaluator_LM-score")
        if not isinstance(capability, str) or not capability:
            row.problems.append(f"{path}:{line}: field 'capability' must be a non-empty string")
            continue
        if isinstance(human, bool) or not isinstance(human, (int, float)):
            row.problems.append(f"{path}:{line}: field 'human_score' must be a number, got {human!r}")
            continue
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            row.problems.append(f"{path}:{line}: field 'evaluator_LM-score' must be a number or null, got {score!r}")
            continue
        missing += score is None
        out_of_range += not 1 <= human <= 5
        triples.append((capability, score, human))
    result = agreement_by_group(triples)
    row.n = result["average"]["n"]
    row.figures = {k: v for k, v in result["average"].items() if k != "n"}
    row.per_capability = result["groups"]
    row.counts = {"rows": len(triples), "dropped_missing_model_score": missing,
                  "kept_human_score_outside_1_5": out_of_range, "malformed": len(row.problems)}
    return row


def pairwise_row(model: str, variant: str, path: Path) -> Row:
    """Accuracy and Cohen's kappa of one recorded pairwise run against human preferences, per capability."""
    row = Row("pairwise", model, variant)
    numbered = list(_read_jsonl(path, row))
    triples, problems = preference_rows(record for _, record in numbered)
    row.problems += [f"{path}:{numbered[number - 1][0]}: {problem}" for number, problem in problems]
    result = preference_agreement(triples)
    row.n = result["average"]["n"]
    row.figures = {k: v for k, v in result["average"].items() if k not in ("n", "failed")}
    row.per_capability = result["groups"]
    row.counts = {"rows": len(triples), "kept_failed_as_wrong": result["average"]["failed"],
                  "malformed": len(row.problems)}
    return row


def reproduce(root: str | Path) -> list[Row]:
    """Every reappraisal and judge run found under ``root``, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"DIR not found: {root}")
    rows: list[Row] = []
    for model in _subdirs(root / "reappraisal"):
        for variant in _subdirs(model):
            rows.append(reappraisal_row(model.name, variant.name, variant))
    for model in _subdirs(root / "biggen-judgements"):
        for path in sorted(model.glob("*.jsonl")):
            rows.append(judge_row(model.name, path.stem, path))
    for model in _subdirs(root / "pairwise"):
        for path in sorted(model.glob("*.jsonl")):
            rows.append(pairwise_row(model.name, path.stem, path))
    if not rows:
        raise FileNotFoundError(f"no reappraisal/<model>/<variant>/, biggen-judgements/<model>/*.jsonl or "
                                f"pairwise/<model>/*.jsonl under {root}")
    return rows


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def render(rows: list[Row]) -> str:
    """A plain-text table: one line per model and variant, then the problems found."""

    def fmt(value: float | None, digits: int) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

    lines = [f"{'task':<12}{'model':<16}{'variant':<40}{'n':>6}  {'align':>6}{'empathy':>8}  "
             f"{'pearson':>8}{'spearman':>9}{'mae':>6}{'alpha':>7}{'acc':>7}{'kappa':>7}  malformed"]
    for r in rows:
        f = r.figures
        malformed = sum(v for k, v in r.counts.items() if k.endswith("malformed"))
        lines.append(
            f"{r.task:<12}{r.model:<16}{r.variant:<40}{r.n:>6}  {fmt(f.get('alignment'), 2):>6}{fmt(f.get('empathy'), 2):>8}  "
            f"{fmt(f.get('pearson'), 3):>8}{fmt(f.get('spearman'), 3):>9}{fmt(f.get('mae'), 2):>6}"
            f"{fmt(f.get('krippendorff_alpha'), 3):>7}{fmt(f.get('accuracy'), 3):>7}{fmt(f.get('kappa'), 3):>7}"
            f"  {malformed}"
        )
    for r in rows:
        notes = [f"{k}={v}" for k, v in r.counts.items() if v and (k.startswith("dropped") or k.startswith("kept"))]
        if notes:
            lines.append(f"note: {r.task} {r.model} {r.variant}: {', '.join(notes)}")
        for problem in r.problems[:5]:
            lines.append(f"malformed: {problem}")
        if len(r.problems) > 5:
            lines.append(f"malformed: ... and {len(r.problems) - 5} more in {r.task} {r.model} {r.variant}")
    return "\n".join(lines)
