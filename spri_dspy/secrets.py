"""Keeping API keys out of everything spri-dspy prints or writes.

Providers echo a wrong key in their error messages ("Incorrect API key provided:
sk-..."), and a key can sit in a URL (``http://user:key@host``). :func:`redact`
replaces both: the value of every environment variable whose name says it holds
a secret (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ...), and the
credentials part of any URL. The CLI passes everything it prints through it;
results, failure logs, saved programs and reports are redacted as they are written.
"""

from __future__ import annotations

import io
import os
import re
from typing import TextIO

MASK = "***"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")
_MIN_LENGTH = 6  # shorter values ("unused", "1") are placeholders, and masking them would mangle text
_REGISTERED: set[str] = set()
_PLACEHOLDERS = {"USER:PASSWORD@"}  # the help's own example URL (postgresql://USER:PASSWORD@HOST/DB), not a secret


def register_url(url: str | None) -> None:
    """Treat the credentials inside ``url`` (``http://user:key@host``) as secrets from now on,
    wherever they appear (error messages quote them without the scheme)."""
    from urllib.parse import urlsplit

    if not url:
        return
    parts = urlsplit(url)
    for value in (parts.password, f"{parts.username}:{parts.password}" if parts.password else None):
        if value:
            _REGISTERED.add(value)


def environment_secrets() -> set[str]:
    """Values of the environment variables whose names say they hold secrets (long enough to be real ones)."""
    return {value for name, value in os.environ.items() if _SECRET_NAME.search(name) and len(value) >= _MIN_LENGTH}


def known_secrets(environment: set[str] | None = None) -> list[str]:
    """Values of the environment variables that hold secrets (``environment``: as read earlier by
    :func:`environment_secrets`, else read now), and registered ones, longest first."""
    values = environment_secrets() if environment is None else environment
    return sorted(values | _REGISTERED, key=len, reverse=True)


def redact(text: str, environment: set[str] | None = None) -> str:
    """``text`` with every known secret and every URL's credentials replaced by ``***`` (``environment``: the
    environment's secrets as read earlier by :func:`environment_secrets`, for a writer of many records; else
    read now)."""
    if not text:
        return text
    for secret in known_secrets(environment):
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_CREDENTIALS.sub(lambda match: match.group(0) if match.group(0) in _PLACEHOLDERS else MASK + "@", text)


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what is written before passing it on (for ``sys.stdout``/``sys.stderr``)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:  # asked at exit too (Ray's colorama), when the stream may be closed
        return not self.stream.closed and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")
