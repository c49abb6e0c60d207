"""Where calls run: LMs and their endpoints, the embedded llama.cpp engine, adapters, batch runs on local
threads or a Ray cluster, usage counting, locks, secrets, progress and atomic files.

Imports :mod:`spri_dspy.core`, :mod:`spri_dspy.signatures` and :mod:`spri_dspy.compat`.
"""
