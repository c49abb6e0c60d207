"""Tracking experiments in MLflow: one parent run per command, a child run per variant or trial.

``spri ablate``, ``spri tune`` and ``spri compile`` take ``--mlflow [URI]``. The parent run holds the command's
parameters (data, task, metric, models, settings, grid), its summary metrics and its artefacts (tables, plots,
the report page, the compiled program); under it, :func:`ablate` opens a child run per variant and
:func:`trial_runs` logs a child run per Optuna trial. The store is the URI given, else ``$MLFLOW_TRACKING_URI``,
else an SQLite store in the command's output folder (``mlflow.db``); an SQLite store keeps the artefacts of the
experiments it creates beside its database, in ``mlartifacts/``:
``mlflow ui --backend-store-uri sqlite:///OUTPUT/mlflow.db`` shows it. The experiment is
``$MLFLOW_EXPERIMENT_NAME``, else ``spri-dspy``. Every value logged passes through
:func:`spri_dspy.secrets.redact`, so no key reaches the store.

For traces of every call, turn on DSPy's own integration, ``mlflow.dspy.autolog()``: SPRI's steps show as
nested spans under the program's.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from spri_dspy.secrets import redact, register_url

EXPERIMENT = "spri-dspy"
"""The MLflow experiment runs go to when ``$MLFLOW_EXPERIMENT_NAME`` names none."""
INSTALL = "pip install 'spri-dspy[mlflow]'"
_MAX_PARAM = 6000  # MLflow's limit on a parameter's value
_METRIC_KEY = re.compile(r"[^\w\-. /]")


class TrackingUnavailable(RuntimeError):
    """``--mlflow`` without MLflow installed; the message says how to install it."""


def tracking_uri(uri: str | None, folder: str | os.PathLike) -> str:
    """The store to track in: ``uri`` when given, else ``$MLFLOW_TRACKING_URI``, else an SQLite store in ``folder``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``params`` as MLflow parameters: nested mappings as dotted keys, lists of names joined by commas, values as
    redacted text (``None`` kept as ``"None"``, so an unset setting is visible), at most MLflow's 6,000 characters."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, f"{name}."))
        elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            out[name] = redact(", ".join(value))[:_MAX_PARAM]
        else:
            out[name] = redact(str(value))[:_MAX_PARAM]
    return out


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///PATH`` store, else None."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    return Path(uri.removeprefix("sqlite:///")).resolve()


def artifact_root(uri: str) -> str | None:
    """Where a new experiment in the store ``uri`` keeps its artefacts: ``mlartifacts/`` beside a local SQLite
    database (MLflow's own default is ``./mlruns`` in whatever folder the command runs in), else the store's
    default (None: a tracking server decides)."""
    database = sqlite_path(uri)
    return (database.parent / "mlartifacts").as_uri() if database is not None else None


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in a metric key replaced by ``_``."""
    return _METRIC_KEY.sub("_", name)


class Tracker:
    """The parent run of one command in MLflow, entered as a context manager; child runs open under it.

    ``Tracker(uri, "ablate reappraisal", params={...}, folder=OUTPUT)``: ``uri`` as :func:`tracking_uri` resolves
    it (``folder`` holds the default store); a local SQLite store keeps its artefacts beside its database
    (:func:`artifact_root`). The run ends FINISHED, or FAILED when the command raises.
    """

    def __init__(self, uri: str | None, run_name: str, *, params: Mapping[str, Any] | None = None,
                 folder: str | os.PathLike = ".", tags: Mapping[str, str] | None = None):
        self.uri = tracking_uri(uri, folder)
        self.run_name = run_name
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self.client = None
        self.experiment_id: str | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Tracker:
        mlflow = _mlflow()
        database = sqlite_path(self.uri)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        register_url(self.uri)  # credentials in the tracking URL are masked wherever they would be printed
        for name in ("mlflow", "alembic"):  # the store's schema migrations log at INFO on first use
            logging.getLogger(name).setLevel(logging.WARNING)
        self._previous_uri = os.environ.get("MLFLOW_TRACKING_URI")  # MLflow keeps the URI in the environment
        mlflow.set_tracking_uri(self.uri)
        self.client = mlflow.MlflowClient(self.uri)  # one client for every value this run logs
        self._stack.callback(mlflow.set_tracking_uri, self._previous_uri)  # undone when the run ends
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            self.experiment_id = mlflow.create_experiment(name, artifact_location=artifact_root(self.uri))
        else:
            self.experiment_id = experiment.experiment_id
        from spri_dspy.compat import installed_version

        tags = {"spri_dspy.version": installed_version("spri-dspy") or "unknown",
                "dspy.version": installed_version("dspy") or "unknown", **self.tags}
        run = self._stack.enter_context(mlflow.start_run(run_name=self.run_name, experiment_id=self.experiment_id,
                                                         nested=mlflow.active_run() is not None, tags=tags))
        self.run_id = run.info.run_id
        self.log_params(self.params)
        return self

    def __exit__(self, *exc_info) -> bool | None:
        return self._stack.__exit__(*exc_info)

    @contextlib.contextmanager
    def child(self, name: str, params: Mapping[str, Any] | None = None) -> Iterator[str]:
        """A child run named ``name`` under this one, with ``params``; yields its run id. It ends FAILED when the
        block raises."""
        import mlflow

        with mlflow.start_run(run_name=name, experiment_id=self.experiment_id, nested=True,
                              parent_run_id=self.run_id) as run:
            self.log_params(params or {}, run.info.run_id)
            yield run.info.run_id

    def log_params(self, params: Mapping[str, Any], run_id: str | None = None) -> None:
        """Log ``params`` (:func:`flat`) on ``run_id`` (default: the parent run)."""
        values = flat(params)
        if values:
            self.client.log_batch(run_id or self.run_id, params=[_param(k, v) for k, v in values.items()])

    def log_metrics(self, metrics: Mapping[str, float | int | None], run_id: str | None = None,
                    step: int = 0) -> None:
        """Log ``metrics`` on ``run_id`` (default: the parent run); ``None`` and NaN (no value) are left out."""
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        values = [Metric(metric_key(k), float(v), now, step) for k, v in metrics.items()
                  if v is not None and not math.isnan(v)]
        if values:
            self.client.log_batch(run_id or self.run_id, metrics=values)

    def log_artifacts(self, paths, run_id: str | None = None) -> None:
        """Copy each existing file of ``paths`` into the run's artefacts (default: the parent run's)."""
        for path in map(Path, paths):
            if path.is_file():
                self.client.log_artifact(run_id or self.run_id, str(path))

    def log_text(self, text: str, name: str, run_id: str | None = None) -> None:
        """``text`` as the artefact ``name`` (redacted)."""
        self.client.log_text(run_id or self.run_id, redact(text), name)

    def set_tags(self, tags: Mapping[str, Any], run_id: str | None = None) -> None:
        """Tag ``run_id`` (default: the parent run) with ``tags``, redacted."""
        for key, value in tags.items():
            self.client.set_tag(run_id or self.run_id, key, redact(str(value))[:_MAX_PARAM])


def trial_runs(tracker: Tracker, objectives: tuple[str, ...] = ("metric", "lm_calls_per_input")
               ) -> Callable[[Any, Any], None]:
    """An Optuna callback (``study.optimize(callbacks=[...])``) that logs each finished trial as a child run of
    ``tracker``: its parameters, its values named by ``objectives``, its numeric user attributes as metrics and the
    rest (worker, error) as tags, ending FINISHED (complete), FAILED (failed) or KILLED (pruned). Trials that
    never ran because the study's budget was spent are left out."""

    def log(study, trial) -> None:
        if "budget" in trial.user_attrs:
            return
        state = trial.state.name
        with tracker.child(f"trial {trial.number}", trial.params) as run_id:
            values = dict(zip(objectives, trial.values or (), strict=False))
            numbers = {k: v for k, v in trial.user_attrs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            tracker.log_metrics({**values, **numbers}, run_id)
            tracker.set_tags({"optuna.study": study.study_name, "optuna.trial": trial.number, "optuna.state": state,
                              **{f"optuna.{k}": v for k, v in trial.user_attrs.items() if k not in numbers}}, run_id)
            status = {"COMPLETE": "FINISHED", "FAIL": "FAILED", "PRUNED": "KILLED"}.get(state, "FINISHED")
        if status != "FINISHED":
            tracker.client.set_terminated(run_id, status)

    return log


def _mlflow():
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingUnavailable(f"--mlflow needs MLflow, which is not installed: {INSTALL}") from exc
    return mlflow


def _param(key: str, value: str):
    from mlflow.entities import Param

    return Param(key, value)
