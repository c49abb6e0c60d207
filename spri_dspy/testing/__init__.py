"""Test doubles for SPRI programs: a scripted engine for ``dspy.LM`` and a local OpenAI-compatible server.

- :class:`ScriptedEngine` answers in-process, step by step, from a script, and logs every call.
- :class:`FakeOpenAIServer` serves ``/v1/chat/completions`` on 127.0.0.1 with a fixed latency,
  scripted critic scores and injected faults, for benchmarks and fault-tolerance tests
  through DSPy's normal HTTP client.
- :class:`helpers.postgres.PostgresServer` starts a throwaway PostgreSQL server from the machine's
  own binaries, for tests and benchmarks of tuning workers sharing a study.
"""

from spri_dspy.testing.engine import STEPS, Call, ScriptedEngine, scripted_lm, step_signatures

__all__ = ["ScriptedEngine", "Call", "STEPS", "scripted_lm", "step_signatures", "FakeOpenAIServer"]


def __getattr__(name: str):
    # Imported on first use, so that `python -m spri_dspy.testing.server` runs the module only once.
    if name == "FakeOpenAIServer":
        from spri_dspy.testing.server import FakeOpenAIServer

        return FakeOpenAIServer
    raise AttributeError(name)
