"""Compile and tune SPRI programs: DSPy optimizers for prompts and demos, Optuna for settings.

- :func:`compile_program` compiles SPRI, SPRIJudge or a baseline against a metric with
  BootstrapFewShot (demos), MIPROv2 (instructions and demos) or GEPA (instructions);
  every step is its own predictor, so each is compiled separately.
- :func:`tune` runs an Optuna study over SPRI's settings (see :mod:`spri_dspy.optimizers.tune`).
"""

from spri_dspy.experiments.evaluation import Evaluation, evaluate
from spri_dspy.optimizers.compile import OPTIMIZERS, CompileReport, compile_program
from spri_dspy.optimizers.tune import TuneResult, pareto_front, tune

__all__ = ["OPTIMIZERS", "CompileReport", "compile_program", "evaluate", "Evaluation", "tune", "TuneResult", "pareto_front"]
