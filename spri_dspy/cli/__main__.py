"""``python -m spri_dspy.cli``: the ``spri`` command."""

from spri_dspy.cli.main import entry

entry()
