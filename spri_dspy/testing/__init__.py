"""Test doubles for SPRI programs: a scripted engine for ``dspy.LM`` and a local OpenAI-compatible server.

- :class:`ScriptedEngine` answers in-process, step by step, from a script, and logs every call.
- :class:`FakeOpenAIServer` serves ``/v1/chat/completions`` on 127.0.0.1 with a fixed latency,
  scripted critic scores and injected faults, for benchmarks and fault-tolerance tests
  through DSPy's normal HTTP client.
"""

from spri_dspy.testing.engine import STEPS, Call, ScriptedEngine, scripted_lm
from spri_dspy.testing.server import FakeOpenAIServer

__all__ = ["ScriptedEngine", "Call", "STEPS", "scripted_lm", "FakeOpenAIServer"]
