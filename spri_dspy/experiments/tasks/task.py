"""What a task is to the library: its data, the kind of program it runs, its metrics, framing and ablations.

Each of the paper's uses is one :class:`Task` object in its own file under
``spri_dspy/experiments/tasks/`` and listed in :data:`spri_dspy.experiments.tasks.TASKS`, which the CLI,
compile, tune and ablate read. Adding a task means one new file defining its
Task, plus its entry in ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from spri_dspy.core.data import TableSource
from spri_dspy.experiments.evaluation import Inputs
from spri_dspy.core.programs import PROGRAMS, Kind, build_program


@dataclass(frozen=True)
class Variant:
    """One row of an ablation: a program from :data:`spri_dspy.core.programs.PROGRAMS`, the settings that
    differ from the run's, how it reads an example (default: the example's inputs), and whether it is the
    grid's baseline."""

    program: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    inputs: Inputs | None = None
    baseline: bool = False
    """The variant every other is compared with, input by input (:mod:`spri_dspy.experiments.compare`)."""

    def build(self, kind: Kind, settings: Mapping[str, Any]) -> dspy.Module:
        """The variant's program with the run's ``settings`` and this variant's own on top."""
        return build_program(self.program, kind, **{**settings, **self.settings})


@dataclass(frozen=True)
class Task:
    """One use of SPRI, as the CLI, compile, tune and ablate see it.

    Args:
        name: the ``--task`` name.
        kind: ``"response"`` (programs answer a query) or ``"judge"`` (programs grade a response).
        load: ``load(data, field)`` -> Examples whose inputs the task's programs take
            (``field`` is the ``--field`` column, for tasks that read one text column).
        metrics: the metric names that fit the task (:data:`spri_dspy.experiments.metrics.METRICS`); the first is the default.
        framing: what the task asks of the response stage (``SPRI(framing=...)``), if anything.
        has_goal: whether its examples carry a response goal (``seed_match="goal"`` needs one).
        variants: ``variants(settings)`` -> the ablation grid for the run's settings (name -> :class:`Variant`);
            None when the task has no ablation.
        labeled: ``labeled(example)`` -> labeled demos for compiling, step name -> the demo's fields, where
            the data holds a step's output (a reappraisal row's expert constitution is the principle
            generator's ``principles``); None when it holds none.
        group_by: the example field whose values group the inputs for paired comparisons (an appraisal
            dimension, a capability); None for no groups.
        grid: the task's ablation grid file, shipped in ``spri_dspy/experiments/tasks/grids/``
            (:mod:`spri_dspy.experiments.grid`); ``spri ablate`` runs it unless given ``--grid``.

    Example:
        ```python
        from spri_dspy.experiments.tasks import TASKS

        task = TASKS["reappraisal"]
        examples = task.load("resort_eval_30.json", None)
        grid = task.variants({"threshold": 4, "max_rounds": 4, "seeds": None, "max_words": 128})
        programs = {name: variant.build(task.kind, {"framing": task.framing}) for name, variant in grid.items()}
        ```
    """

    name: str
    kind: Kind
    load: Callable[[TableSource, str | None], list[dspy.Example]]
    metrics: tuple[str, ...]
    framing: str | None = None
    has_goal: bool = False
    variants: Callable[[Mapping[str, Any]], dict[str, Variant]] | None = None
    labeled: Callable[[dspy.Example], dict[str, dict[str, Any]]] | None = None
    group_by: str | None = None
    grid: str | None = None

    @property
    def grid_path(self) -> Path | None:
        """Where the task's grid file is (None when it has none)."""
        return Path(__file__).parent / "grids" / self.grid if self.grid else None

    def metric_name(self, name: str | None = None, program: str = "spri") -> str:
        """The metric ``name`` (None: the task's default), checked to fit this task and the registry program
        ``program`` of its kind (a metric of principles needs a program that writes them); ValueError if not."""
        from spri_dspy.experiments.metrics import READS_PRINCIPLES

        name = name or self.metrics[0]
        if name not in self.metrics:
            raise ValueError(f"--metric {name} does not fit --task {self.name} (it takes {', '.join(self.metrics)})")
        spec = PROGRAMS.get((self.kind, program))
        if name in READS_PRINCIPLES and spec is not None and not spec.writes_principles:
            raise ValueError(f"--metric {name} scores principles; --program {program} writes none")
        return name


def response_variants(settings: Mapping[str, Any], *, per_goal: bool = False,
                      oracle: Inputs | None = None) -> dict[str, Variant]:
    """The response tasks' ablation grid: SPRI without seeds, the baselines (vanilla is the one every
    variant is compared with), SPRI without the word limit, and with ``seeds`` SPRI with seeds and the
    seeds' principles used directly.

    ``per_goal`` adds SPRI shown only the seed of the input's goal (and matches the
    seed-principles baseline by goal); ``oracle`` adds the given-principles baseline, reading
    its principles from the example with that function.
    """
    grid = {"spri_no_seeds": Variant("spri", {"seeds": None}), "vanilla": Variant("vanilla", baseline=True),
            "self_refine": Variant("self-refine")}
    if settings.get("max_words") is not None:  # the paper's word limit, and the same program without it
        grid["spri_no_word_limit"] = Variant("spri", {"seeds": None, "max_words": None})
    if settings.get("seeds"):
        grid["spri_seeds"] = Variant("spri", {"seed_match": "all"})
        grid["seed_principles"] = Variant("seed-principles",
                                          {"seed_match": "goal" if per_goal else settings.get("seed_match", "all")})
        if per_goal:
            grid["spri_seed_per_dimension"] = Variant("spri", {"seed_match": "goal"})
    if oracle is not None:
        grid["oracle"] = Variant("oracle", inputs=oracle)
    return grid
