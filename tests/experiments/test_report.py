"""spri report: the HTML page of a batch run and of an ablation, checked in a real headless Chromium."""

from __future__ import annotations

import json

import dspy
import pytest

from helpers import critic_answers, numbered
from spri_dspy import SPRI, cli
from spri_dspy.runtime.batch import run_batch
from spri_dspy.experiments.report import write_report


@pytest.fixture
def batch(scripted, tmp_path):
    """Three inputs: q1 refined (response scores 2 then 5), q2 accepted at once (4), q3 failing; one input
    holds HTML that must show as text."""
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "query": q}) + "\n"
                            for i, q in (("a", "q1 <b>bold?</b>"), ("b", "q2"), ("c", "q3"))))
    script = {
        "principle_generator": numbered("principles", "principles"),
        "principle_critic": lambda call: {"feedback": "fine", "score": 5},
        "responder": lambda call: {"response": f"answer to {call.inputs['query']}"},
        "response_refiner": lambda call: {"response": f"{call.inputs['draft_response']} (better)"},
        "response_critic": critic_answers([2, 5, 4, "not json"], "response"),
    }
    _, lm = scripted(script, model="scripted/gen")
    with dspy.context(lm=lm):
        run_batch(SPRI(max_rounds=2), path, tmp_path / "out", fields={"query": "query"}, threads=1, progress=False)
    return tmp_path / "out"



def _open(browser, path):
    page = browser.new_page()
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: problems.append(f"request {request.url}")
            if not request.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri())
    return page, problems


def test_the_batch_page_loads_sorts_and_expands(batch, browser):
    path = write_report(batch)
    page, problems = _open(browser, path)
    assert page.title() == "spri batch: out"
    assert [page.inner_text(f"#results thead th:nth-child({i})") for i in (1, 3, 5)] == [
        "id", "principles score", "principles rounds"]
    ids = lambda: page.eval_on_selector_all("#results > tbody > tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert ids() == ["a", "b"]  # q3 failed: listed below, not in the table
    page.click("#results th:has-text('response score')")
    assert ids() == ["b", "a"]  # 4 then 5, ascending
    page.click("#results th:has-text('response score')")
    assert ids() == ["a", "b"]
    page.click("#results th:has-text('response rounds')")
    assert ids() == ["b", "a"]  # 1 round then 2
    details = page.locator("#results > tbody > tr", has_text="q1").locator("details")
    assert not details.locator("table.rounds").is_visible()
    details.locator("summary").click()
    rounds = details.locator("table.rounds tr")
    assert rounds.count() == 4  # heading + principles 1 + response 1, 2
    assert rounds.nth(2).inner_text().split("\t")[:5] == ["response", "1", "2", "no", "response feedback 1"]
    assert "answer to q1 <b>bold?</b> (better)" in details.inner_text()  # escaped, shown as text
    assert page.locator("#results b").count() == 0
    assert "Failed inputs (1)" in page.inner_text("body") and "has no answer left" in page.inner_text("body")
    assert page.locator("svg[aria-label='final response score'] rect").count() == 5
    assert problems == []


def test_the_ablation_page_shows_the_table_and_plots(scripted, tmp_path, browser):
    from spri_dspy.experiments.ablate import VariantResult, plot_variants, write_table

    rows = [VariantResult("spri", 4, 1, 0.5, 0.2, 0.8, 16, 900, "TimeoutError: late", 16, "1 x TimeoutError: late"),
            VariantResult("vanilla", 4, 0, 0.25, 0.0, 0.5, 1, 100)]
    write_table(rows, tmp_path, "empathy (judge's 1-5 / 5)")
    plot_variants(rows, tmp_path, "empathy (judge's 1-5 / 5)")
    page, problems = _open(browser, write_report(tmp_path))
    assert page.locator("img").count() == 2 and page.eval_on_selector_all(
        "img", "images => images.every(i => i.complete && i.naturalWidth > 100)")
    names = lambda: page.eval_on_selector_all("#results > tbody > tr", "rows => rows.map(r => r.cells[0].textContent)")
    page.click("#results th:has-text('metric')")
    assert names() == ["vanilla", "spri"]
    assert "Metric: empathy (judge's 1-5 / 5)" in page.inner_text("body") and "1 x TimeoutError" in page.inner_text("body")
    assert problems == []


def test_the_ablation_page_shows_the_paired_table_and_forest_plot_of_ten_variants(tmp_path, browser):
    import random

    from spri_dspy.experiments.ablate import VariantResult, plot_variants, write_table
    from spri_dspy.experiments.compare import compare

    rng = random.Random(0)
    names = ["vanilla"] + [f"variant_{i}" for i in range(1, 9)] + ["<b>bold</b>"]
    scores = {name: [rng.random() + 0.05 * k for _ in range(12)] for k, name in enumerate(names)}
    rows = [VariantResult(name, 12, 0, sum(s) / 12, 0.0, 1.0, 4, 100, scores=s) for name, s in scores.items()]
    comparisons = compare(scores, "vanilla")
    write_table(rows, tmp_path, "alignment", comparisons)
    plot_variants(rows, tmp_path, "alignment", comparisons)
    page, problems = _open(browser, write_report(tmp_path))
    body = page.inner_text("body")
    assert "Against the baseline: vanilla" in body
    assert page.locator("table.comparison tbody tr").count() == 9  # every variant but the baseline
    assert page.locator("table.comparison b").count() == 0 and "<b>bold</b>" in body  # shown as text
    assert page.eval_on_selector("img[alt='comparison.png']", "i => i.complete && i.naturalHeight > 400")
    assert problems == []


def test_cli_report_and_its_errors(batch, capsys, tmp_path):
    assert cli.main(["report", str(batch)]) == 0
    assert capsys.readouterr().out == f"wrote {batch / 'report.html'}: open it in a browser (it needs no network)\n"
    assert cli.main(["report", str(tmp_path / "in.jsonl").replace("in.jsonl", "")]) == 2
    assert "holds no results.jsonl (a 'spri generate/judge' run) and no ablation.csv" in capsys.readouterr().err
    assert cli.main(["report", str(batch), "--max-rows", "0"]) == 2
    assert "--max-rows must be at least 1, got 0" in capsys.readouterr().err


def test_only_the_pages_own_script_may_run(tmp_path):
    """The policy names the script by its hash: an injected inline script would not run even if escaping failed."""
    import base64
    import hashlib

    from spri_dspy.experiments.report import _SCRIPT, _page

    page = _page("t", "<p>x</p>")
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page and "'unsafe-inline'; img-src" not in page
    assert "script-src 'unsafe-inline'" not in page and f"<script>{_SCRIPT}</script>" in page


def test_repeats_show_their_spread_on_the_ablation_page(tmp_path):
    from spri_dspy.experiments.ablate import VariantResult, write_table
    from spri_dspy.experiments.compare import compare

    scores = {"base": [0.1, 0.2, 0.3], "v": [0.4, 0.5, 0.9]}
    comparisons = compare(scores, "base")
    comparisons[0].repeat_spread = 0.25
    rows = [VariantResult(name, 3, 0, 0.5, 0.0, 1.0, 1, 10, scores=s, repeats=2, repeat_spread=0.125)
            for name, s in scores.items()]
    write_table(rows, tmp_path, "metric", comparisons)
    html = write_report(tmp_path).read_text()
    assert html.count(">repeat_spread</th>") == 2 and ">0.125</td>" in html and ">0.250</td>" in html
    write_table([VariantResult("base", 3, 0, 0.5, 0.0, 1.0, 1, 10)], tmp_path / "once")
    assert "repeat_spread" not in write_report(tmp_path / "once").read_text()  # one run: no spread column
