"""The algorithm: steps, the critique-refine loop, the programs built from them (SPRI, the judges, the
baselines), their registry, and the inputs they read (seeds, rubrics, input checks).

Imports :mod:`spri_dspy.signatures` and :mod:`spri_dspy.compat` only; nothing here knows how or where
calls run (see :mod:`spri_dspy.runtime`).
"""
