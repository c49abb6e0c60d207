"""SPRI as a service: an OpenAI-compatible chat-completions endpoint and a playground page (``spri serve``).

:func:`create_app` returns the ASGI app (Starlette, in the ``[serve]`` extra); :func:`served_programs` lists
the programs it can answer as.
"""

from spri_dspy.serve.app import Limits, Served, create_app, served_programs

__all__ = ["Limits", "Served", "create_app", "served_programs"]
