"""Secrets never reach what spri-dspy prints or writes."""

import io

from spri_dspy import secrets


def test_redacts_secret_environment_values_and_url_credentials(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef123456")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-987654321")
    monkeypatch.setenv("OTHER_KEY", "x")  # too short to be a real secret: left alone
    monkeypatch.setenv("HOME_DIR", "sk-live-abcdef123456-not-a-secret-name")
    text = ("Incorrect API key provided: sk-live-abcdef123456; token tok-987654321; "
            "GET http://bob:pa55word@example.org/v1 failed; x marks")
    assert secrets.redact(text) == ("Incorrect API key provided: ***; token ***; "
                                    "GET http://***@example.org/v1 failed; x marks")


def test_registered_url_credentials_are_redacted_without_their_scheme():
    secrets.register_url("http://someone:hunter2-pass@10.0.0.1:8000/v1")
    assert secrets.redact("cannot connect to someone:hunter2-pass@10.0.0.1:8000") == "cannot connect to ***@10.0.0.1:8000"


def test_redacting_stream(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-000111222333")
    sink = io.StringIO()
    stream = secrets.RedactingStream(sink)
    assert stream.write("key=sk-ant-000111222333\n") == len("key=sk-ant-000111222333\n")
    assert sink.getvalue() == "key=***\n"


def test_a_six_character_secret_and_https_credentials_are_redacted(monkeypatch):
    monkeypatch.setenv("TINY_API_KEY", "abc123")  # the shortest value treated as a secret
    monkeypatch.setenv("TINIER_API_KEY", "abc12")  # shorter: a placeholder, left alone
    assert secrets.redact("key abc123, other abc12") == "key ***, other abc12"
    assert secrets.redact("see https://alice:pa55word@example.com/v1") == "see https://***@example.com/v1"
