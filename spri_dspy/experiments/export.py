"""Fine-tuning data from a batch run: chat-format SFT and preference (DPO) datasets with a dataset card.

``export(OUTPUT, "sft")`` reads the ``results.jsonl`` of a ``spri generate`` run and
writes a folder in the Hugging Face Hub's layout, which ``datasets.load_dataset(folder)``
reads and TRL's trainers take unchanged:

- ``data/train-00000-of-00001.parquet``: one row per finished input. ``sft``: a
  ``messages`` column (an optional system message, the user's input, SPRI's final
  response). ``dpo``: ``prompt``/``chosen``/``rejected`` conversations, where ``chosen``
  is the final response and ``rejected`` the lowest-scored draft the critic turned
  down (inputs with no draft scored below the final response have no pair and are left out);
- ``README.md``: a dataset card (program, models, settings, counts; the licence is
  left for the user to set), read by the Hub and by ``load_dataset``.

Inputs that failed, or never ran, are left out and counted, never an error.
:func:`push_to_hub` uploads the folder through ``datasets``' own ``push_to_hub``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from spri_dspy.runtime.batch import RESULTS, read_output

Format = Literal["sft", "dpo"]
DATA_FILE = "data/train-00000-of-00001.parquet"


class ExportError(ValueError):
    """The folder is not a batch run that can be exported (no results, a judge run, ...)."""


@dataclass
class Export:
    """What :func:`export` wrote: the folder, the rows written, and the inputs left out by reason."""

    path: Path
    format: Format
    rows: int = 0
    left_out: dict[str, int] = field(default_factory=dict)


def messages(query: str, response: str, system: str | None = None) -> list[dict[str, str]]:
    """A chat conversation in the format TRL and chat templates read: an optional system message,
    the user's ``query`` and the assistant's ``response``."""
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": query}, {"role": "assistant", "content": response}]


def _system(system_prompt: str | None, principles: str | None, principles_as_system: bool) -> str | None:
    parts = [system_prompt] + ([principles] if principles_as_system else [])
    return "\n\n".join(part for part in parts if part) or None


def preference_pair(trace: list[Mapping[str, Any]], response: str) -> tuple[str, int, int] | None:
    """(rejected text, its score, the final response's score) from a SPRI trace: the lowest-scored
    response draft the critic scored below the final response; None when there is none."""
    rounds = [r for r in trace if r.get("stage") == "response" and r.get("score") is not None]
    final = next((r["score"] for r in reversed(rounds) if r.get("text") == response), None)
    if final is None:
        return None
    worse = [r for r in rounds if r["score"] < final and r.get("text") != response]
    if not worse:
        return None
    rejected = min(worse, key=lambda r: (r["score"], r["round"]))
    return rejected["text"], rejected["score"], final


def export(output: str | os.PathLike, format: Format = "sft", to: str | os.PathLike | None = None, *,
           system_prompt: str | None = None, principles_as_system: bool = False) -> Export:
    """Write the results of the batch run in ``output`` as a ``format`` dataset folder ``to``
    (default ``OUTPUT/sft`` or ``OUTPUT/dpo``): see the module docstring.

    Args:
        system_prompt: a system message put first in every conversation.
        principles_as_system: put each input's final principles in its system message (after
            ``system_prompt``), so the model learns to respond under given principles.
    """
    import datasets

    output = Path(output)
    if format not in ("sft", "dpo"):
        raise ExportError(f"format must be 'sft' or 'dpo', got {format!r}")
    try:
        run = read_output(output)
    except FileNotFoundError:
        raise ExportError(f"{output} holds no {RESULTS}: export reads the folder a 'spri generate' run wrote") from None
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    rows, left_out = [], Counter()
    # in input order (results.jsonl holds them in the order they finished); errors name the results line
    for line, record in sorted(enumerate(run.records, start=1), key=lambda item: item[1].get("index", 0)):
        query, result = record.get("input", {}).get("query"), record.get("output", {})
        if query is None or not isinstance(result.get("response"), str):
            raise ExportError(f"{output / RESULTS} line {line}: not a response record (export takes the results of "
                              "'spri generate'; judgements have no response to train on)")
        system = _system(system_prompt, result.get("principles"), principles_as_system)
        row: dict[str, Any] = {"id": record["id"]}
        if format == "sft":
            row["messages"] = messages(query, result["response"], system)
        else:
            pair = preference_pair(result.get("trace") or [], result["response"])
            if pair is None:
                left_out["no draft scored below the final response"] += 1
                continue
            rejected, rejected_score, chosen_score = pair
            prompt = messages(query, "", system)[:-1]
            row.update(prompt=prompt, chosen=[{"role": "assistant", "content": result["response"]}],
                       rejected=[{"role": "assistant", "content": rejected}], score_chosen=chosen_score,
                       score_rejected=rejected_score)
        row["principles"] = result.get("principles")
        row.update({f"columns.{k}" if k in row else k: v for k, v in record.get("columns", {}).items()})
        rows.append(row)
    if run.failures:
        left_out["failed"] = len(run.failures)
    if run.not_run:
        left_out["not run yet"] = run.not_run
    if not rows:
        raise ExportError(f"{output}: no input gives a {format} row ({_counts(left_out) or 'no results'})")
    target = Path(to) if to is not None else output / format
    (target / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_list(rows)
    table.to_parquet(str(target / DATA_FILE))
    result = Export(path=target, format=format, rows=len(rows), left_out=dict(left_out))
    (target / "README.md").write_text(dataset_card(result, run.run, run.summary, table, system_prompt=system_prompt,
                                                   principles_as_system=principles_as_system), encoding="utf-8")
    return result


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items())


def dataset_card(result: Export, identity: Mapping[str, Any], summary: Mapping[str, Any], table, *,
                 system_prompt: str | None, principles_as_system: bool) -> str:
    """The ``README.md`` of an exported dataset: Hub metadata (the licence left for the user to set) and
    what produced it: program, models, settings, counts and columns.

    It declares no ``configs``: ``datasets`` finds ``data/train-*`` by its standard layout, and a
    declared config would make ``load_dataset`` cache the folder by its name alone, so a re-export
    (or another folder of the same name) would load stale rows."""
    from spri_dspy.core.programs import _version

    models = {step: model.get("model") for step, model in (identity.get("models") or {}).items() if model}
    settings = identity.get("settings") or {}
    counts = {"rows": result.rows, **result.left_out}
    layout = ("`messages`: system (optional), user, assistant" if result.format == "sft" else
              "`prompt`, `chosen`, `rejected` conversations (TRL's preference format), `score_chosen`, "
              "`score_rejected` (the critic's 1-5 scores)")
    lines = [
        "---",
        "license: unknown  # set the licence of your data before sharing it",
        "task_categories:",
        "- text-generation",
        "tags:",
        "- synthetic",
        "- spri",
        f"- {result.format}",
        "---",
        "",
        f"# {result.format.upper()} data generated with SPRI",
        "",
        f"Written by spri-dspy {_version()} from a `spri generate` run of **{identity.get('program', 'unknown')}**"
        " (situated principles written, critiqued and refined per input, then a response written under them, "
        "critiqued and refined).",
        "",
        "## Models",
        "",
        *(f"- {step}: `{model}`" for step, model in models.items()),
        "",
        "## Settings",
        "",
        *(f"- {key}: `{json.dumps(value)}`" for key, value in settings.items()),
        f"- system prompt: {json.dumps(system_prompt) if system_prompt else 'none'}",
        f"- principles as system message: {'yes' if principles_as_system else 'no'}",
        "",
        "## Counts",
        "",
        *(f"- {reason}: {n}" for reason, n in counts.items()),
        f"- LM calls needed by the run: {summary.get('lm_calls_needed', 'unknown')}",
        "",
        "## Columns",
        "",
        f"{layout}; `principles` (SPRI's final principles); `id` and the input's other columns.",
        f"All columns: {', '.join(f'`{name}`' for name in table.column_names)}.",
        "",
        "## Licence",
        "",
        "Not set: the licence depends on the inputs' and the models' terms. Set `license:` above.",
        "",
    ]
    return "\n".join(lines)


def push_to_hub(path: str | os.PathLike, repo_id: str, *, private: bool = True, token: str | None = None) -> None:
    """Upload an exported folder to the Hub as ``repo_id``: the data through ``datasets``'
    ``DatasetDict.push_to_hub``, then its dataset card. ``token`` defaults to the Hub's own login
    (``HF_TOKEN`` or ``huggingface-cli login``); it is never written anywhere."""
    import datasets
    from huggingface_hub import DatasetCard

    path = Path(path)
    tables = datasets.load_dataset(str(path))
    tables.push_to_hub(repo_id, private=private, token=token)
    DatasetCard((path / "README.md").read_text(encoding="utf-8")).push_to_hub(repo_id, token=token)
