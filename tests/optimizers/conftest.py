"""Shared data for the compile and tune tests."""

import json

import pytest


@pytest.fixture
def reappraisal_rows(tmp_path):
    """``reappraisal_rows(n)``: a JSONL file of ``n`` RESORT-shaped rows (post, aim, constitution, standards)."""
    def write(n):
        rows = [{"Reddit Post": f"post {i}", "appraisal_dimension_aim": f"aim {i % 2}", "constitution": f"c {i}",
                 "standards": "s"} for i in range(n)]
        path = tmp_path / "reappraisal.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write
