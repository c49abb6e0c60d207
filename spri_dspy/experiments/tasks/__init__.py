"""The paper's three uses of SPRI, one :class:`Task` each: cognitive reappraisal, judging with rubrics,
and instructions (synthetic SFT data); and pairwise judging against human preferences. :data:`TASKS` is the registry the CLI, compile, tune and ablate read."""

from spri_dspy.experiments.tasks.judging import JUDGEMENTS, load_biggen, load_judgements
from spri_dspy.experiments.tasks.preferences import PREFERENCES, load_preferences
from spri_dspy.experiments.tasks.reappraisal import REAPPRAISAL, REAPPRAISAL_FRAMING, load_reappraisal
from spri_dspy.experiments.tasks.sft import INSTRUCTIONS, generate_sft, load_instructions, save_sft
from spri_dspy.experiments.tasks.task import Task, Variant

TASKS: dict[str, Task] = {task.name: task for task in (REAPPRAISAL, INSTRUCTIONS, JUDGEMENTS, PREFERENCES)}
"""--task name -> Task."""

__all__ = ["TASKS", "Task", "Variant", "load_reappraisal", "REAPPRAISAL_FRAMING", "load_biggen", "load_judgements", "load_preferences",
           "load_instructions", "generate_sft", "save_sft"]
