"""What researchers do with the programs: tasks, metrics, evaluation, ablations, the paper's tables,
fine-tuning exports and the HTML report.

Imports :mod:`spri_dspy.runtime`, :mod:`spri_dspy.core` and below.
"""
