"""Batch runs at scale: parallel, resumable, exactly-once, with failures recorded and usage counted.

``run_batch(program, INPUT, OUTPUT)`` runs a program (SPRI, SPRIJudge or a
baseline) over every row of a table and writes to the folder OUTPUT:

- ``results.jsonl``: one line per finished input, appended as it finishes with a
  single ``write`` (a kill -9 can at most leave a torn last line, which the next
  run cuts off) and synced to disk at least once a second;
- ``failures.jsonl``: a log of inputs that failed (LM errors after DSPy's
  retries, parse failures, bad rows), retried by the next run;
- ``summary.json``: counts, LM calls and tokens per step, stage and model, wall time;
- ``results.parquet``: a ``datasets``-readable copy of ``results.jsonl``, written at the end.

Each input has a stable id (an id column, or a hash of its inputs), so rerunning
the same command skips finished ids and retries failed ones: however often a run
is killed, the end state holds exactly one result per input. Inputs run on
DSPy's own ``ParallelExecutor``. A program that declares its ``stages`` (SPRI:
principles, then response) has each stage scheduled as its own task
(:mod:`spri_dspy.runtime.stages`): the stages of one input run in order, those of
different inputs interleave, so the last inputs of a batch spread over every thread. At most 1.5 x ``threads`` inputs are
under way at once, which bounds the work a kill throws away. With ``ray=`` the
stages run on a Ray cluster's actors instead (a :class:`~spri_dspy.runtime.stages.Backend`:
:class:`~spri_dspy.runtime.distributed.RayCluster`), each with the same scheduler, while this process alone writes OUTPUT.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dspy

from spri_dspy.core.data import RowError, TableSource, jsonl_lines, load_table, text_field
from spri_dspy.runtime.files import atomic_file, write_atomic
from spri_dspy.runtime.embedded import EMBEDDED_MODEL_NAME
from spri_dspy.runtime.lms import adapter_named, adapter_record, endpoint_of
from spri_dspy.runtime.locks import LockHeld, take_lock
from spri_dspy.core.rubric import format_rubric
from spri_dspy.secrets import environment_secrets, redact
from spri_dspy.runtime.stages import Backend, StageRunner, StageTask, recorder
from spri_dspy.runtime.usage import count_calls_needed, name_steps

RESULTS, FAILURES, SUMMARY, PARQUET = "results.jsonl", "failures.jsonl", "summary.json", "results.parquet"


class ResultStore:
    """The OUTPUT folder's append-only files, written by many threads, exactly once per id."""

    def __init__(self, directory: str | os.PathLike, prepare: Callable[[Path], None] | None = None):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"{self.directory} is a file; OUTPUT is a folder (created when missing)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_folder(self.directory)
        if prepare is not None:  # under the lock, before the files are opened
            try:
                prepare(self.directory)
            except BaseException:
                self.unlock()
                raise
        self.done: set[str] = set(self._load(self.directory / RESULTS))
        self._results = os.open(self.directory / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._failures = os.open(self.directory / FAILURES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._synced = time.monotonic()
        self._secrets = environment_secrets()  # read once per run, not once per record (a scan of the environment)

    @staticmethod
    def _load(path: Path) -> Iterator[str]:
        """Ids already in ``results.jsonl`` (read line by line), after cutting off a torn last line."""
        if not path.exists():
            return
        complete = 0  # bytes up to the end of the last whole line
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break  # a torn last line: the write it belongs to never finished
                complete += len(line)
                try:
                    yield json.loads(line)["id"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path} line {number} is not a result record; move the file away to start "
                                     "over") from None
        if complete < path.stat().st_size:
            with path.open("r+b") as handle:
                handle.truncate(complete)

    def add(self, record: dict) -> bool:
        """Append a result unless its id is already done; True when written."""
        line = (redact(json.dumps(record, ensure_ascii=False, default=str), self._secrets) + "\n").encode()
        with self._lock:
            if record["id"] in self.done:
                return False
            _write_all(self._results, line)
            self.done.add(record["id"])
            if time.monotonic() - self._synced > 1.0:
                os.fsync(self._results)
                self._synced = time.monotonic()
        return True

    def fail(self, record: dict) -> None:
        """Log a failed input (secrets in its error redacted)."""
        line = (redact(json.dumps(record, ensure_ascii=False, default=str), self._secrets) + "\n").encode()
        with self._lock:
            _write_all(self._failures, line)

    def close(self) -> None:
        """Sync and close both files (the folder stays locked until :meth:`unlock`)."""
        for fd in (self._results, self._failures):
            os.fsync(fd)
            os.close(fd)

    def unlock(self) -> None:
        """Let another process write to the folder."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class OutputBusyError(RuntimeError):
    """Another process is writing to the same OUTPUT folder."""


class RunMismatchError(ValueError):
    """OUTPUT holds the results of a different run (another program, settings, model, input or fields)."""


IDENTITY = "run.json"
_RUN_FILES = (RESULTS, FAILURES, SUMMARY, PARQUET, IDENTITY)


def run_identity(program: dspy.Module, source: Any, fields: Mapping[str, str], id_field: str | None,
                 keep_columns: bool, split: str | None = None) -> dict[str, Any]:
    """What produced an OUTPUT folder (JSON data, no keys): the program's class, settings and a hash of its
    state (instructions, demos, seeds), the models of the configured LM and of each step that has its own,
    the configured adapter (the prompts' format), the input, the field mapping, the id column and the package
    version."""
    from spri_dspy.core.programs import _state_without_lms, _version, program_settings

    try:
        settings = program_settings(program)
    except Exception:  # a user's own module: its state hash still tells programs apart
        settings = {}
    state = json.dumps(_state_without_lms(program), sort_keys=True, default=str)  # the models are listed below
    models = {"lm": _model(dspy.settings.lm)}
    models.update({name.removesuffix(".predict"): _model(predictor.lm)
                   for name, predictor in program.named_predictors() if predictor.lm is not None})
    return {"program": type(program).__name__, "settings": json.loads(json.dumps(settings, default=str)),
            "state_sha256": hashlib.sha256(state.encode()).hexdigest()[:16], "models": models,
            "adapter": adapter_record(dspy.settings.adapter),
            "input": os.path.abspath(source) if isinstance(source, (str, os.PathLike)) else "(in-memory table)",
            **({"split": split} if split else {}), "fields": dict(fields), "id_field": id_field, "keep_columns": keep_columns, "version": _version()}


def recorded_adapter(output: str | os.PathLike) -> str | None:
    """The prompt format (a :data:`~spri_dspy.runtime.lms.ADAPTERS` name) that OUTPUT's ``run.json`` says its results
    were written in, so that a resume given no format goes on in it; None without a ``run.json`` or when it records
    none of those formats. A ``run.json`` from before the format was recorded, of a run on the embedded model, gets
    ``compact-last``: its default then."""
    path = Path(output) / IDENTITY
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    if "adapter" not in recorded:
        models = json.dumps(recorded.get("models"))
        return "compact-last" if EMBEDDED_MODEL_NAME in models else None
    return adapter_named(recorded["adapter"])


_ADDED_KEYS = ("adapter",)  # identity keys that a run.json written before them lacks: no difference for such a run


def _model(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    kwargs = getattr(lm, "kwargs", {}) or {}
    endpoint = endpoint_of(lm)
    return {"model": getattr(lm, "model", type(lm).__name__),
            **({"endpoint": endpoint.public} if endpoint is not None and endpoint.url else {}),
            **{key: kwargs[key] for key in ("temperature", "max_tokens") if key in kwargs}}


def _check_identity(directory: Path, identity: dict[str, Any], restart: bool) -> None:
    """Resume only the same run: write ``run.json`` for a new one, refuse a different one (or with
    ``restart`` move the old run's files aside into ``previous-N/``)."""
    path = directory / IDENTITY
    if path.exists():
        recorded = json.loads(path.read_text())
        recorded.update({key: identity.get(key) for key in _ADDED_KEYS if key not in recorded})
        differences = [f"{key}: {_short(recorded_value)} -> {_short(value)}"
                       for key, (recorded_value, value) in _differences(recorded, identity).items()
                       if key != "version"]
        if differences and not restart:
            raise RunMismatchError(
                f"{directory} holds the results of a different run ({'; '.join(differences[:3])}"
                f"{'; ...' if len(differences) > 3 else ''}); use another OUTPUT folder, or --restart to move "
                "the old results aside and start over")
        if not differences:
            return
    if restart and any((directory / name).exists() for name in _RUN_FILES):
        number = 1 + max((int(p.name.split("-")[1]) for p in directory.glob("previous-*") if p.name.split("-")[1].isdigit()),
                         default=0)
        aside = directory / f"previous-{number}"
        aside.mkdir()
        for name in _RUN_FILES:
            if (directory / name).exists():
                os.replace(directory / name, aside / name)
    write_atomic(path, json.dumps(identity, indent=2))


def _differences(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: dict[str, tuple[Any, Any]] = {}
        for key in dict.fromkeys([*old, *new]):
            found.update(_differences(old.get(key), new.get(key), f"{prefix}{key}."))
        return found
    return {} if old == new else {prefix.rstrip("."): (old, new)}


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _lock_folder(directory: Path) -> int:
    """Take the folder's exclusive lock (``OUTPUT/.lock``, :func:`~spri_dspy.runtime.locks.take_lock`), or raise
    :class:`OutputBusyError`. A process killed even with kill -9 leaves no lock behind, so a resumed run is
    never refused by a dead one."""
    try:
        return take_lock(directory / ".lock")
    except LockHeld as exc:
        raise OutputBusyError(f"{directory} is being written by another spri process (pid {exc.holder or 'unknown'}); "
                              "wait for it to finish or use another OUTPUT folder") from None


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def input_id(inputs: Mapping[str, Any]) -> str:
    """A stable id for an input: a hash of its fields."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass
class BatchSummary:
    """What a batch run did; also written to ``summary.json``."""

    rows: int = 0
    already_done: int = 0
    done: int = 0
    failed: int = 0
    bad_rows: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    lm_calls: int = 0
    """LM calls made: those that reached a model (tokens are counted for these)."""
    lm_calls_needed: int = 0
    """LM calls the program needed, DSPy's cache hits included: the cost of the same work on a cold cache."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_step: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    by_stage: dict[str, dict[str, int]] = field(default_factory=dict)
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    results: int = 0
    """Results in ``results.jsonl`` after this run (this run's and earlier runs' of the same identity)."""
    run: dict[str, Any] = field(default_factory=dict)
    """What produced OUTPUT: its ``run.json`` (see :func:`run_identity`)."""
    failure_reasons: dict[str, int] = field(default_factory=dict)
    """This run's failures grouped by reason (:func:`failure_reason`), most frequent first."""

    @property
    def pending(self) -> int:
        """Inputs without a result after this run, bad rows left out (they need their data fixed first)."""
        return self.rows - self.already_done - self.done - self.bad_rows

    def describe(self, output: str) -> str:
        """The summary for the screen: counts, LM calls and tokens per stage and model, failure reasons, time."""
        lines = [f"{output}: {self.done} done, {self.failed} failed, {self.already_done} already done, "
                 f"{self.bad_rows} bad rows, {self.pending} pending of {self.rows}"
                 + (" (stopped early: --max-errors reached)" if self.stopped_early else "")]
        for title, table in (("stage", self.by_stage), ("model", self.by_model)):
            for key, counts in table.items():
                lines.append(f"  {title} {key}: {counts.get('calls_needed', 0)} LM calls needed, {counts.get('calls', 0)} "
                             f"made: {counts.get('prompt_tokens', 0)} prompt + {counts.get('completion_tokens', 0)} "
                             "completion tokens")
        reasons = list(self.failure_reasons.items())
        for reason, count in reasons[:5]:  # why inputs failed, most frequent first (failures.jsonl has each one)
            lines.append(f"  failed: {count} x {reason}")
        if len(reasons) > 5:
            lines.append(f"  failed: {sum(count for _, count in reasons[5:])} more, for {len(reasons) - 5} other reasons "
                         "(failures.jsonl)")
        cached = self.lm_calls_needed - self.lm_calls
        lines.append(f"  {self.lm_calls_needed} LM calls needed, {self.lm_calls} made"
                     + (f" ({cached} answered by DSPy's cache)" if cached else "") + f", in {self.seconds:.1f} s")
        return "\n".join(lines)


def failure_reason(error: str, limit: int = 200) -> str:
    """A failure's reason in one line, for grouping and for the screen: the error without the advice a
    library appends (DSPy's "To fix: ..."), whitespace collapsed, at most ``limit`` characters."""
    line = " ".join(error.split("To fix:")[0].split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_batch(
    program: dspy.Module,
    source: TableSource,
    output: str | os.PathLike,
    *,
    fields: Mapping[str, str],
    split: str | None = None,
    optional: tuple[str, ...] = (),
    id_field: str | None = None,
    hash_ids: bool = False,
    keep_columns: bool = True,
    restart: bool = False,
    require_columns: bool = False,
    threads: int = 8,
    max_errors: int | None = None,
    skip_bad_rows: bool = False,
    progress: bool = True,
    info: Mapping[str, Any] | None = None,
    ray: Backend | None = None,
) -> BatchSummary:
    """Run ``program`` over every row of ``source`` into the folder ``output`` (see the module docstring).

    Args:
        fields: program argument -> column, e.g. ``{"query": "instruction"}``.
        split: the split of a DatasetDict input (default: every split, see :func:`~spri_dspy.core.data.load_table`).
        optional: the arguments that may be missing or null in a row (e.g. ``goal``).
        id_field: a column holding unique ids; default: the ``id`` column when the table has one,
            else a hash of the row's inputs.
        hash_ids: use the hash of the row's inputs as the id even when the table has an ``id`` column.
        keep_columns: carry every column the program does not read (an id, a category, a source ...)
            through to ``results.jsonl`` (as ``columns``) and ``results.parquet`` (under their own
            names), unchanged; False drops them.
        threads: stages run at once (DSPy's ParallelExecutor); at most 1.5 x ``threads``
            inputs are under way at a time.
        max_errors: stop early once this many inputs failed in this run.
        skip_bad_rows: record rows with a missing, empty or mistyped field as failed
            instead of stopping before any LM call.
        require_columns: every column in ``fields`` must be in the input, the optional ones too (for
            columns a user named on purpose); without it an absent optional column means "none".
        restart: when OUTPUT holds a different run, move its files aside into ``OUTPUT/previous-N/``
            and start over (without it, a different run is refused: :class:`RunMismatchError`).
        info: what ran (program, settings, seeds), recorded in ``summary.json``.
        ray: run on a Ray cluster (:class:`~spri_dspy.runtime.distributed.RayCluster`: a pool of actors, each
            building the program and its LMs itself); OUTPUT is written as by a local run, exactly once.
            ``threads`` counts stages in flight over all actors. ``program`` must be one of
            :data:`~spri_dspy.core.programs.PROGRAMS` (it travels as :func:`~spri_dspy.save_program`'s JSON).

    OUTPUT's ``run.json`` records what produced it (:func:`run_identity`); a rerun with the same
    identity resumes, a different one is refused before any LM call, naming the difference.
    """
    started = time.perf_counter()
    table = load_table(source, split)
    if id_field is None and not hash_ids and "id" in table.column_names:
        id_field = "id"
    absent = [f"{column!r} (for {arg})" for arg, column in fields.items()
              if column not in table.column_names and (arg not in optional or require_columns)]
    if absent:  # with require_columns an optional column too: a typo must not pass as "no goals"
        raise RowError(f"the input has no column {', '.join(absent)}; its columns: {', '.join(table.column_names)}")
    if id_field is not None and id_field not in table.column_names:
        raise RowError(f"the id column {id_field!r} is not in the input (its columns: {', '.join(table.column_names)})")
    used = {*fields.values(), id_field}  # the id column is the record's id already
    carried = [column for column in table.column_names if column not in used] if keep_columns else []
    # Columns JSON cannot hold (an Image's or Audio's bytes, binary data) are left out of the results, said so in
    # summary.json's info: results join back to the input by id and index.
    unwritable = [column for column in carried if not _json_friendly(table.data.schema.field(column).type)]
    carried = [column for column in carried if column not in unwritable]
    if unwritable:
        info = {**(info or {}), "columns_left_out": unwritable}
    rows, bad = _checked_rows(table, fields, optional, id_field)  # every row, before OUTPUT is touched
    if bad and not skip_bad_rows:
        listed = "; ".join(message for _, message in bad[:BAD_ROWS_LISTED])
        more = f"; and {len(bad) - BAD_ROWS_LISTED} more" if len(bad) > BAD_ROWS_LISTED else ""
        raise RowError(f"{len(bad)} bad row{'s' if len(bad) > 1 else ''} (--skip-bad-rows records them as failed and "
                       f"runs the rest): {listed}{more}")
    if ray is None:
        identity = run_identity(program, source, fields, id_field, keep_columns, split)
    else:  # the models the actors build: a local run of the same program and models has the same identity
        program = program.deepcopy()
        if ray.critic_lm is not None and hasattr(program, "place_critics"):  # programs without critics have none
            program.place_critics(ray.critic_lm.build())
        with dspy.context(lm=ray.lm.build()):
            identity = run_identity(program, source, fields, id_field, keep_columns, split)
    with contextlib.ExitStack() as stack:
        if ray is not None:  # connected before OUTPUT is touched: a missing or too small cluster changes nothing
            ray = stack.enter_context(ray.connected())
        store = ResultStore(output, prepare=lambda directory: _check_identity(directory, identity, restart))
        try:
            return _run(program, table, store, started, rows=rows, bad=bad, fields=fields, optional=optional,
                        identity=identity, carried=carried, threads=threads, max_errors=max_errors,
                        progress=progress, info=info, ray=ray)
        finally:
            store.unlock()


def _run(program, table, store: ResultStore, started: float, *, rows, bad, fields, optional, identity, carried, threads,
         max_errors, progress, info, ray: Backend | None = None) -> BatchSummary:
    summary = BatchSummary(rows=table.num_rows, run=identity, info=dict(info or {}))
    try:
        pending = _pending_rows(rows, bad, store, summary)
    except BaseException:
        store.close()
        raise
    totals: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    lock = threading.Lock()
    bar = _progress(len(pending), progress)
    calls = [0]  # LM calls needed so far, counted live as they end (and at each input's end, for Ray)
    stop = threading.Event()

    def record(outcome: str, record: dict, by_step: Mapping[tuple[str, str, str], Mapping[str, int]]) -> None:
        """One input's outcome, from a thread of this process or from a Ray actor: written once, counted once."""
        if carried and "columns" not in record:  # a Ray actor's record: the row is read here, once
            row = table[record["index"]]
            record["columns"] = {column: row[column] for column in carried}
        if outcome == "done":
            if not store.add(record):
                return  # a second copy (a Ray task retried after it had returned): already written and counted
        else:
            store.fail(record)
        with lock:
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if outcome == "failed":
                reason = failure_reason(record.get("error", ""))
                summary.failure_reasons[reason] = summary.failure_reasons.get(reason, 0) + 1
            for key, counter in by_step.items():
                totals[key].update(counter)
                summary.lm_calls += counter.get("calls", 0)
                summary.lm_calls_needed += counter.get("calls_needed", 0)
            if outcome == "failed" and max_errors is not None and summary.failed >= max_errors:
                summary.stopped_early = True
                stop.set()
            calls[0] = max(calls[0], summary.lm_calls_needed)
            bar.set_postfix(done=summary.done, failed=summary.failed, lm_calls=calls[0], refresh=False)
            bar.update()

    try:
        if ray is None:
            def live() -> None:  # the bar counts LM calls as they end, not only when an input finishes
                with lock:
                    calls[0] += 1
                    bar.set_postfix(done=summary.done, failed=summary.failed, lm_calls=calls[0], refresh=False)
                    bar.update(0)  # redraws at most every mininterval

            _run_here(program, table, pending, record, fields=fields, optional=optional, carried=carried,
                      threads=threads, stop=stop, on_call=live if progress else None)
        else:
            inputs = [(index, row_id, _validated(table[index], index, fields, optional)) for index, row_id in pending]
            ray.run(program, inputs, record, threads=threads, stop=stop)
    finally:
        bar.close()
        store.close()
        _fill_usage(summary, totals)
        summary.failure_reasons = dict(sorted(summary.failure_reasons.items(), key=lambda item: -item[1]))
        summary.seconds = round(time.perf_counter() - started, 3)
        summary.results = len(store.done)
        write_atomic(store.directory / SUMMARY, json.dumps(asdict(summary) | {"pending": summary.pending}, indent=2))
    write_parquet(store.directory, {column: table.data.schema.field(column).type for column in carried})
    return summary


def _run_here(program, table, pending, record, *, fields, optional, carried, threads, stop: threading.Event,
              on_call: Callable[[], None] | None = None) -> None:
    """Run the pending inputs in this process, on ``threads`` of DSPy's ParallelExecutor."""
    name_steps(program)
    count_calls_needed(dspy.settings.lm, program)

    def load(task: StageTask) -> None:  # the row is read when its first stage starts: memory stays flat
        row = table[task.index]
        task.arguments = task.inputs = _validated(row, task.index, fields, optional)
        if carried:
            task.columns = {column: row[column] for column in carried}

    finished = recorder(record)
    runner = StageRunner(program, threads, load=load, stop=stop, on_call=on_call)
    runner.add(StageTask(index, row_id, finished=finished) for index, row_id in pending)
    runner.close()
    runner.run()


BAD_ROWS_LISTED = 10
"""How many bad rows an error lists by name (it counts them all)."""


def _json_friendly(arrow_type: Any) -> bool:
    """Whether values of this Arrow type survive JSON (no binary data anywhere inside it)."""
    import pyarrow as pa

    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type) or pa.types.is_fixed_size_binary(arrow_type):
        return False
    if pa.types.is_struct(arrow_type):
        return all(_json_friendly(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        return _json_friendly(arrow_type.value_type)
    return True


def _checked_rows(table, fields, optional, id_field) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Every row checked, reading only the columns the program takes: ((index, id) of the good rows,
    (index, message) of the bad ones; rows are named 1-based in messages)."""
    good, bad, seen = [], [], Counter()
    columns = [column for column in (*fields.values(), id_field) if column is not None and column in table.column_names]
    for index, row in enumerate(table.select_columns(columns)):
        try:
            inputs = _validated(row, index, fields, optional)
            good.append((index, _row_id(row, index, id_field, inputs, seen)))
        except RowError as exc:
            bad.append((index, str(exc)))
    return good, bad


def _pending_rows(rows, bad, store, summary) -> list[tuple[int, str]]:
    """The checked rows without a result yet; the bad ones (with --skip-bad-rows) recorded as failed."""
    for index, message in bad:
        store.fail({"id": f"row-{index}", "index": index, "error": f"bad row: {message}"})
        summary.bad_rows += 1
    pending = []
    for index, row_id in rows:
        if row_id in store.done:
            summary.already_done += 1
        else:
            pending.append((index, row_id))
    return pending


def _validated(row: Mapping[str, Any], index: int, fields: Mapping[str, str], optional: tuple[str, ...]) -> dict:
    inputs = {}
    for arg, column in fields.items():
        value = row.get(column)
        if arg == "rubric" and isinstance(value, Mapping):  # BiGGen's gold rubrics are objects
            try:
                inputs[arg] = format_rubric(value)
            except ValueError as exc:
                raise RowError(f"row {index + 1}: field {column!r}: {exc}") from None
            continue
        value = text_field(row, column, index, optional=arg in optional)
        if value is not None:
            inputs[arg] = value
    return inputs


def _row_id(row, index, id_field, inputs, seen: Counter) -> str:
    if id_field is None:
        base = input_id(inputs)
        seen[base] += 1
        return base if seen[base] == 1 else f"{base}#{seen[base]}"  # identical rows stay distinct inputs
    value = row.get(id_field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(f"row {index + 1}: field {id_field!r} (the id) is missing or empty")
    row_id = str(value)
    seen[row_id] += 1
    if seen[row_id] > 1:
        raise RowError(f"row {index + 1}: field {id_field!r} repeats the id {row_id!r}; ids must be unique")
    return row_id


def _fill_usage(summary: BatchSummary, totals: Mapping[tuple[str, str, str], Counter]) -> None:
    for (step, stage, model), counter in sorted(totals.items()):
        summary.by_step.setdefault(step, {})[model] = dict(counter)
        for table_, key in ((summary.by_stage, stage), (summary.by_model, model)):
            table_.setdefault(key, Counter()).update(counter)
    summary.by_stage = {k: dict(v) for k, v in summary.by_stage.items()}
    summary.by_model = {k: dict(v) for k, v in summary.by_model.items()}
    summary.prompt_tokens = sum(c["prompt_tokens"] for c in totals.values())
    summary.completion_tokens = sum(c["completion_tokens"] for c in totals.values())


@dataclass
class BatchOutput:
    """What a batch run left in its OUTPUT folder, read back (:func:`read_output`)."""

    records: list[dict[str, Any]]
    """``results.jsonl``: one record per input with a result, in file order."""
    failures: dict[str, str]
    """Inputs without a result that failed: id -> the last error logged for it."""
    summary: dict[str, Any]
    """``summary.json`` of the last run ({} when absent)."""
    run: dict[str, Any]
    """``run.json``: what produced the folder ({} when absent)."""

    @property
    def not_run(self) -> int:
        """Inputs of the last run's table with neither a result nor a failure."""
        rows = self.summary.get("rows")
        return max(0, rows - len(self.records) - len(self.failures)) if isinstance(rows, int) else 0


def read_output(directory: str | os.PathLike) -> BatchOutput:
    """Read a batch run's OUTPUT folder: its results, the failures still without a result, its summary and
    identity. FileNotFoundError without ``results.jsonl``; ValueError naming the line of a line that is not
    a result record."""
    directory = Path(directory)
    if not (directory / RESULTS).is_file():
        raise FileNotFoundError(f"{directory} holds no {RESULTS}")
    records = []
    for line, record in jsonl_lines(directory / RESULTS):
        if not isinstance(record, dict) or "id" not in record:
            raise ValueError(f"{directory / RESULTS} line {line}: not a result record")
        records.append(record)
    done = {record["id"] for record in records}
    failures: dict[str, str] = {}
    if (directory / FAILURES).is_file():
        for _, record in jsonl_lines(directory / FAILURES):
            if isinstance(record, dict) and record.get("id") not in done:
                failures[record.get("id")] = record.get("error", "")
    return BatchOutput(records, failures, _read_json(directory / SUMMARY), _read_json(directory / IDENTITY))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


_INTEGER_COLUMNS = ("index", "lm_calls", "lm_calls_made")


def write_parquet(directory: str | os.PathLike, carried: Mapping[str, Any] | None = None, chunk_rows: int = 512) -> Path:
    """``results.parquet`` from ``results.jsonl``, streamed in chunks: id, index, lm_calls, each input
    and output field as a text column (structured values as JSON text), and the carried input
    columns under their own names and Arrow types (``carried``: name -> ``pyarrow.DataType``; a name
    that clashes with ours is prefixed ``columns.``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    carried = dict(carried or {})
    ours = {"id", *_INTEGER_COLUMNS}
    names = {column: f"columns.{column}" if column in ours or "." in column else column for column in carried}

    def rows() -> Iterator[dict]:
        with (directory / RESULTS).open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                flat = {"id": record["id"], "index": record["index"], "lm_calls": record.get("lm_calls"),
                        "lm_calls_made": record.get("lm_calls_made")}
                for prefix in ("input", "output"):
                    for key, value in record.get(prefix, {}).items():
                        flat[f"{prefix}.{key}"] = value if isinstance(value, str) or value is None else json.dumps(value)
                for column, value in record.get("columns", {}).items():
                    if column in names:
                        flat[names[column]] = value
                yield flat

    columns: dict[str, None] = {}
    for row in rows():
        columns.update(dict.fromkeys(row))
    path = directory / PARQUET
    if not columns:
        return path
    types = {names[column]: type_ for column, type_ in carried.items()}
    schema = pa.schema([(name, pa.int64() if name in _INTEGER_COLUMNS else types.get(name, pa.string()))
                        for name in columns])
    with atomic_file(path) as temporary, pq.ParquetWriter(str(temporary), schema) as writer:
        chunk: list[dict] = []
        for row in rows():
            chunk.append(row)
            if len(chunk) == chunk_rows:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return path


def _progress(total: int, enabled: bool):
    import tqdm

    return tqdm.tqdm(total=total, disable=not enabled, unit="input", dynamic_ncols=True, desc="spri")


