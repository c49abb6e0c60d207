"""The paper's three uses of SPRI: cognitive reappraisal, rubrics for LLM-as-a-judge, synthetic SFT data."""

from spri_dspy.tasks.judging import load_biggen, load_judgements
from spri_dspy.tasks.reappraisal import REAPPRAISAL_FRAMING, load_reappraisal
from spri_dspy.tasks.sft import generate_sft, load_instructions, save_sft

__all__ = ["load_reappraisal", "REAPPRAISAL_FRAMING", "load_biggen", "load_judgements", "load_instructions", "generate_sft", "save_sft"]
