"""Every program by name, and compiled programs saved and loaded with their settings.

:data:`PROGRAMS` names each program the library offers for the two kinds of
task: ``"response"`` programs answer a query (SPRI and its baselines),
``"judge"`` programs grade a response (SPRIJudge and its baselines), ``"pairwise"``
programs say which of two responses is better (SPRIPairwiseJudge), and ``"situated"``
wraps any DSPy module (Situated; a module of your own is given again at load).
:func:`build_program` builds any of them from one settings dict, and
:func:`save_program`/:func:`load_program` keep a compiled program in one JSON
file: DSPy's state (instructions, demos) plus what rebuilds the program
(its class, registry name, settings and the package version; never an LM or a key).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import dspy

from spri_dspy.compat import get_dependency_versions, installed_version
from spri_dspy.core import baselines
from spri_dspy.core.judge import SPRIJudge
from spri_dspy.core.steps import SeededStep
from spri_dspy.core.pairwise import SPRIPairwiseJudge
from spri_dspy.core.situated import Situated
from spri_dspy.core.spri import SPRI
from spri_dspy.secrets import redact

Kind = Literal["response", "judge", "pairwise", "situated"]
METADATA_KEY = "spri_dspy"
"""The key under which a saved program's file holds its metadata (beside DSPy's state)."""


class MissingSeedsError(ValueError):
    """A program that shows seeds (seed-principles, seed-rubrics) was built without any."""


@dataclass(frozen=True)
class ProgramSpec:
    """One program in :data:`PROGRAMS`: its class, fixed arguments, whether it needs seeds, and whether its
    Prediction holds principles (what a metric of principles scores)."""

    name: str
    kind: Kind
    cls: type[dspy.Module]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    needs_seeds: bool = False
    summary: str = ""
    writes_principles: bool = True

    def accepts(self) -> tuple[str, ...]:
        """The settings this program takes (its constructor's parameters, less the fixed ones)."""
        return tuple(name for name in settings_parameters(self.cls) if name not in self.fixed)


def settings_parameters(cls: type) -> tuple[str, ...]:
    """The settings ``cls``'s constructor takes: its own parameters, and where it passes ``**settings`` on to
    a base class (it declares only the settings it adds), the base's too."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in parameters if p.name != "self" and p.name not in names
                  and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return tuple(names)


PROGRAMS: dict[tuple[Kind, str], ProgramSpec] = {
    (spec.kind, spec.name): spec
    for spec in (
        ProgramSpec("spri", "response", SPRI, summary="situated principles, then the response (the paper)"),
        ProgramSpec("vanilla", "response", baselines.Vanilla, summary="respond directly", writes_principles=False),
        ProgramSpec("self-refine", "response", baselines.SelfRefine, summary="respond, critique and refine",
                    writes_principles=False),
        ProgramSpec("oracle", "response", baselines.OraclePrinciples,
                    summary="SPRI's response stage under principles given with each input"),
        ProgramSpec("seed-principles", "response", baselines.SeedPrinciples, needs_seeds=True,
                    summary="the selected seeds' principles as the principles"),
        ProgramSpec("spri", "judge", SPRIJudge, summary="situated rubric, then the judgement (the paper)"),
        ProgramSpec("spri", "pairwise", SPRIPairwiseJudge,
                    summary="situated rubric, then a verdict on two responses, judged in both orders"),
        ProgramSpec("vanilla", "judge", baselines.VanillaJudge, summary="judge directly"),
        ProgramSpec("self-refine", "judge", baselines.SelfRefineJudge, summary="judge, critique and refine"),
        ProgramSpec("mt-bench", "judge", baselines.RubricJudge, {"rubric": baselines.MT_BENCH_RUBRIC, "seeds": None},
                    summary="MT-Bench's instance-agnostic rubric"),
        ProgramSpec("flask", "judge", baselines.RubricJudge, {"rubric": baselines.FLASK_RUBRIC, "seeds": None},
                    summary="FLASK's skill-based rubric"),
        ProgramSpec("oracle", "judge", baselines.RubricJudge, {"rubric": None, "seeds": None}, summary="the gold rubric given with each input"),
        ProgramSpec("seed-rubrics", "judge", baselines.RubricJudge, {"rubric": None}, needs_seeds=True,
                    summary="the selected seed rubrics"),
        ProgramSpec("situated", "situated", Situated, summary="SPRI around any DSPy module or signature"),
    )
}
"""(kind, name) -> the program: the names ``spri generate/judge --program`` and the ablations use."""


def program_names(kind: Kind) -> tuple[str, ...]:
    """The names of the programs of ``kind``, in registry order."""
    return tuple(name for k, name in PROGRAMS if k == kind)


def build_program(name: str, kind: Kind = "response", **settings: Any) -> dspy.Module:
    """Build the program ``name`` of ``kind`` from ``settings``.

    Settings the program does not take (e.g. ``seeds`` for Vanilla, ``max_words``
    for a judge) are left out, so one settings dict serves every program of a kind.

    Example:
        ```python
        program = build_program("self-refine", threshold=5, max_rounds=2, seeds=None)
        judge = build_program("mt-bench", kind="judge", use_reference=False)
        ```
    """
    spec = PROGRAMS.get((kind, name))
    if spec is None:
        raise ValueError(f"unknown {kind} program {name!r}; known: {', '.join(program_names(kind))}")
    if spec.needs_seeds and not settings.get("seeds"):
        raise MissingSeedsError(f"program {name!r} needs seeds")
    accepted = spec.accepts()
    return spec.cls(**spec.fixed, **{key: value for key, value in settings.items() if key in accepted})


def program_settings(program: dspy.Module) -> dict[str, Any]:
    """The settings that rebuild ``program`` (JSON data; no LM): its constructor's parameters, read back.

    Seeds shown as a step's demos are left to DSPy's state; seeds a program holds
    itself (SeedPrinciples, RubricJudge) are written out as plain records.
    """
    seeded = next((step for _, step in program.named_sub_modules(SeededStep)), None)
    settings: dict[str, Any] = {}
    for name in settings_parameters(type(program)):
        if name == "critic_lm":
            continue
        if name == "module":  # Situated: what rebuilds the wrapped module (a string), else None: given at load
            settings[name] = getattr(program, "module_source", None)
        elif name == "seeds":
            seeds = getattr(program, "seeds", None)
            settings[name] = [dict(seed.items()) for seed in seeds] if seeds and seeded is None else None
        elif hasattr(program, name):
            settings[name] = getattr(program, name)
        elif seeded is not None and hasattr(seeded, name):
            settings[name] = getattr(seeded, name)
    return settings


def _spec_of(program: dspy.Module) -> ProgramSpec:
    candidates = [spec for spec in PROGRAMS.values() if spec.cls is type(program)
                  and all((getattr(program, key, None) or None) == value for key, value in spec.fixed.items())
                  and (not spec.needs_seeds or getattr(program, "seeds", None))]
    if not candidates:
        raise TypeError(f"{type(program).__name__} is not one of spri_dspy's programs; save it with program.save()")
    return max(candidates, key=lambda spec: (len(spec.fixed), spec.needs_seeds))


def save_program(program: dspy.Module, path: str | os.PathLike) -> None:
    """Save ``program`` (one of :data:`PROGRAMS`) to a JSON file: DSPy's state plus its metadata.

    The metadata (under ``"spri_dspy"``) holds the program's kind, name, class,
    settings and the package version; secrets in it are redacted and no LM is saved.
    """
    text = _saved_text(program)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _saved_text(program: dspy.Module) -> str:
    """What :func:`save_program` writes (JSON text, secrets redacted, no LM)."""
    spec = _spec_of(program)
    state = {**_state_without_lms(program), "metadata": {"dependency_versions": get_dependency_versions()}}
    state[METADATA_KEY] = {"kind": spec.kind, "program": spec.name, "class": spec.cls.__name__,
                           "settings": program_settings(program), "version": _version()}
    return redact(json.dumps(state, indent=2, ensure_ascii=False, default=_no_lm))


def _state_without_lms(program: dspy.Module) -> dict[str, Any]:
    """DSPy's state of ``program`` with no step's LM in it: a step LM (a critic placed on its own model) is a
    setting of the run, given again at load (``critic_lm``); DSPy cannot even save some (an engine's LM)."""
    copy = program.deepcopy()
    for predictor in copy.predictors():
        predictor.lm = None
    return copy.dump_state()


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a file written by :func:`save_program` (``kind``, ``program``, ``settings``, ...)."""
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle).get(METADATA_KEY)
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a program saved by 'spri compile' or spri_dspy.save_program ({exc})") from None
    if not isinstance(metadata, dict) or "program" not in metadata or "kind" not in metadata:
        raise ValueError(f"{os.fspath(path)}: not a program saved by 'spri compile' or spri_dspy.save_program (no {METADATA_KEY!r} metadata)")
    if (metadata["kind"], metadata["program"]) not in PROGRAMS:
        raise ValueError(f"{os.fspath(path)}: its metadata names an unknown {metadata['kind']} program "
                         f"{metadata['program']!r} (known: {', '.join(program_names(metadata['kind']))})")
    return metadata


def load_program(path: str | os.PathLike, critic_lm: dspy.BaseLM | None = None, **overrides: Any) -> dspy.Module:
    """The program saved at ``path``, rebuilt with its saved settings (``overrides`` win) and its
    compiled state loaded; no pickle. ``critic_lm`` places its critics, as at construction.

    Example:
        ```python
        save_program(spri_dspy.SPRI(threshold=2, max_rounds=3), "spri.json")
        program = load_program("spri.json")  # threshold 2, 3 rounds
        ```
    """
    metadata = read_metadata(path)
    with open(path, encoding="utf-8") as handle:
        state = json.load(handle)
    return _rebuilt(state, metadata, critic_lm, **overrides)


def _rebuilt(state: dict[str, Any], metadata: dict[str, Any], critic_lm: dspy.BaseLM | None = None,
             **overrides: Any) -> dspy.Module:
    """The program of a saved ``state`` (see :func:`load_program`)."""
    settings = {**metadata.get("settings", {}), **overrides, "critic_lm": critic_lm}
    program = build_program(metadata["program"], metadata["kind"], **settings)
    program.load_state(state)
    if critic_lm is not None and hasattr(program, "place_critics"):  # DSPy's load_state sets each step's LM from the file, dropping the one placed above
        program.place_critics(critic_lm)
    return program


def _version() -> str:
    """spri-dspy's installed version, or ``"unknown"``."""
    return installed_version("spri-dspy") or "unknown"


def _no_lm(value: Any) -> Any:
    raise TypeError(f"cannot save a {type(value).__name__} in a program's settings")


