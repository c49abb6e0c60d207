"""Ablation grids declared in a TOML file: which variants to run, each a program with its own settings,
models per step, instructions per step, demos on or off, and the baseline they are compared with.

```toml
[variants.vanilla]
program = "vanilla"                   # a registry name (spri_dspy.PROGRAMS) or a file saved by spri compile
baseline = true                       # exactly one variant is the baseline

[variants.spri_t3]
program = "spri"
settings = { threshold = 3 }          # on top of the run's settings (--threshold, --max-rounds ...)
without = ["seeds"]                   # settings to clear (None) for this variant
lms = { critic = "openai/gpt-4o-mini", principle_refiner = "embedded" }   # per step kind or per step
instructions = { principle_critic = "Score ...", response_critic = { file = "critic.txt" } }
demos = false                         # drop every step's demos (compiled ones, and seeds shown as demos)
inputs = { principles = "constitution" }   # program argument <- example field
when = "seeds"                        # only when the run has this setting (e.g. --seeds)
```

A bad grid is one :class:`GridError` naming the file, the variant and the key, before any LM call.
Read with the standard library (``tomllib``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

KEYS = ("program", "baseline", "settings", "without", "lms", "instructions", "demos", "inputs", "when")
"""The keys a variant may have."""
KINDS = ("generator", "critic", "refiner")
"""The step kinds ``lms`` may name (every step of that kind)."""


class GridError(ValueError):
    """A grid file that cannot run: the message names the file, the variant and the key."""


@dataclass(frozen=True)
class GridVariant:
    """One ``[variants.NAME]`` table of a grid file, checked (see the module's docstring for the keys)."""

    name: str
    program: str
    baseline: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    without: tuple[str, ...] = ()
    lms: Mapping[str, str] = field(default_factory=dict)
    instructions: Mapping[str, str] = field(default_factory=dict)
    demos: bool = True
    inputs: Mapping[str, str] = field(default_factory=dict)
    when: str | None = None


@dataclass(frozen=True)
class Grid:
    """A grid file's variants, in the file's order."""

    path: Path
    variants: tuple[GridVariant, ...]

    @property
    def baseline(self) -> str:
        """The name of the baseline variant."""
        return next(v.name for v in self.variants if v.baseline)

    def chosen(self, settings: Mapping[str, Any]) -> list[GridVariant]:
        """The variants that run with the run's ``settings`` (those whose ``when`` setting is set)."""
        return [v for v in self.variants if v.when is None or settings.get(v.when)]


def load_grid(path: str | os.PathLike, kind: str) -> Grid:
    """Read and check the grid file at ``path`` for programs of ``kind`` (``"response"``, ``"judge"``,
    ``"pairwise"``); raises :class:`GridError`."""
    from spri_dspy.core.programs import PROGRAMS, read_metadata, settings_parameters

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{path}: not TOML ({exc})") from None
    unknown = sorted(set(data) - {"variants"})
    if unknown or not isinstance(data.get("variants"), dict) or not data["variants"]:
        raise GridError(f"{path}: a grid holds [variants.NAME] tables only" + (f"; unknown {unknown}" if unknown else ""))
    variants = []
    for name, table in data["variants"].items():
        def fail(key: str, problem: str) -> GridError:
            return GridError(f"{path}: variant {name}: {key}: {problem}")

        if not isinstance(table, dict):
            raise fail("variants", "must be a table")
        extra = sorted(set(table) - set(KEYS))
        if extra:
            raise fail(extra[0], f"unknown key; a variant takes {', '.join(KEYS)}")
        program = table.get("program")
        if not isinstance(program, str):
            raise fail("program", "required: a registry name or a file saved by spri compile")
        if program.endswith(".json"):
            file = (path.parent / program).resolve()
            if not file.is_file():
                raise fail("program", f"no such file {file}")
            try:
                metadata = read_metadata(file)
            except ValueError as exc:
                raise fail("program", str(exc)) from None
            program, accepts = str(file), settings_parameters(PROGRAMS[metadata["kind"], metadata["program"]].cls)
            if metadata["kind"] != kind:
                raise fail("program", f"a compiled {metadata['kind']} program; this task runs {kind} programs")
        elif (kind, program) not in PROGRAMS:
            names = ", ".join(n for k, n in PROGRAMS if k == kind)
            raise fail("program", f"unknown {kind} program {program!r}; known: {names}")
        else:
            accepts = PROGRAMS[kind, program].accepts()
        for key in ("settings", "lms", "instructions", "inputs"):
            if not isinstance(table.get(key, {}), dict):
                raise fail(key, "must be a table, e.g. { name = value }")
        if not isinstance(table.get("without", []), list) or not all(isinstance(n, str) for n in table.get("without", [])):
            raise fail("without", 'must be a list of setting names, e.g. ["seeds"]')
        if not isinstance(table.get("when", ""), str):
            raise fail("when", "must be a setting's name, e.g. \"seeds\"")
        settings, without = table.get("settings", {}), table.get("without", [])
        for key in [*settings, *without]:
            if key not in accepts or key == "critic_lm":
                raise fail(f"settings.{key}" if key in settings else "without",
                           f"{program} has no setting {key!r}; it takes {', '.join(a for a in accepts if a != 'critic_lm')}")
        if table.get("when") is not None and table["when"] not in accepts:
            raise fail("when", f"{program} has no setting {table['when']!r} to depend on")
        instructions = {}
        for step, text in table.get("instructions", {}).items():
            if isinstance(text, dict) and set(text) == {"file"}:
                source = path.parent / text["file"]
                if not source.is_file():
                    raise fail(f"instructions.{step}", f"no such file {source}")
                text = source.read_text(encoding="utf-8")
            if not isinstance(text, str) or not text.strip():
                raise fail(f"instructions.{step}", "must be a text or { file = \"PATH\" }")
            instructions[step] = text.strip()
        for key, value in (("baseline", table.get("baseline", False)), ("demos", table.get("demos", True))):
            if not isinstance(value, bool):
                raise fail(key, f"must be true or false, got {value!r}")
        for key in ("lms", "inputs"):
            if not all(isinstance(v, str) for v in table.get(key, {}).values()):
                raise fail(key, "must map names to texts")
        variants.append(GridVariant(name, program, table.get("baseline", False), settings, tuple(without),
                                    table.get("lms", {}), instructions, table.get("demos", True),
                                    table.get("inputs", {}), table.get("when")))
    baselines = [v.name for v in variants if v.baseline]
    if len(baselines) != 1:
        raise GridError(f"{path}: baseline: exactly one variant needs baseline = true, found "
                        f"{len(baselines)}{' (' + ', '.join(baselines) + ')' if baselines else ''}")
    return Grid(path, tuple(variants))


def build_variant(variant: GridVariant, kind: str, settings: Mapping[str, Any], path: Path,
                  make_lm: Callable[[str], Any] | None = None):
    """The program of ``variant`` with the run's ``settings`` under its own, its steps' instructions, LMs and
    demos as the grid says; a step the program does not have is a :class:`GridError`."""
    import dspy

    from spri_dspy.core.programs import build_program, load_program
    from spri_dspy.core.steps import Step

    own = {**settings, **variant.settings, **dict.fromkeys(variant.without)}
    if os.path.isfile(variant.program):
        own.pop("critic_lm", None)
        program = load_program(variant.program, critic_lm=settings.get("critic_lm"),
                               **{k: v for k, v in own.items() if k in variant.settings or k in variant.without})
    else:
        program = build_program(variant.program, kind, **own)
    steps = {name.removeprefix("self."): module for name, module in program.named_sub_modules(Step)}
    for key, names in (("instructions", variant.instructions), ("lms", variant.lms)):
        for name in names:
            if name not in steps and not (key == "lms" and name in KINDS):
                raise GridError(f"{path}: variant {variant.name}: {key}.{name}: {variant.program} has no such step; "
                                f"its steps: {', '.join(steps)}" + (f"; or a kind: {', '.join(KINDS)}" if key == "lms" else ""))
    for name, text in variant.instructions.items():
        steps[name].predict.signature = steps[name].predict.signature.with_instructions(text)
    for name, model in variant.lms.items():
        lm = make_lm(model) if make_lm else dspy.LM(model)
        for step_name, step in steps.items():
            if step_name == name or step.kind == name:
                step.set_lm(lm)
    if not variant.demos:
        for predictor in program.predictors():
            predictor.demos = []
    return program


def variant_inputs(variant: GridVariant) -> Callable | None:
    """How ``variant`` reads an example: its inputs, plus each ``inputs`` argument from its example field."""
    if not variant.inputs:
        return None
    mapping = dict(variant.inputs)
    return lambda example: {**example.inputs(), **{arg: example[source] for arg, source in mapping.items()}}
