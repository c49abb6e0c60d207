"""The playground page of ``spri serve`` in a real headless Chromium: a query typed in, its rounds arriving in
order, text shown as text, and no request leaving the server."""

from __future__ import annotations

import dspy

from spri_dspy.serve import create_app, served_programs
from spri_dspy.testing import FakeOpenAIServer


def test_the_playground_shows_each_round_as_it_arrives_and_html_as_text(browser, serve, tmp_path):
    with FakeOpenAIServer(latency=0.15, critic_scores=(2, 5)) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        with serve(create_app(served_programs({}), lm)) as url:
            page = browser.new_page()
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith(url) else None)
            page.goto(url + "/")
            assert page.title() == "spri playground"
            page.wait_for_selector("#model option", state="attached")  # (the page's CSP forbids wait_for_function's eval)
            assert page.eval_on_selector_all("#model option", "o => o.map(x => x.value)")[:3] == [
                "spri", "vanilla", "self-refine"]
            query = 'My <b>boss</b> <img src=x onerror="window.hacked=1"> ignored me'
            page.fill("#query", query)
            page.fill("#goal", "see it differently")
            page.click("#send")
            page.wait_for_selector("#rounds-list li")
            first = page.inner_text("#rounds-list li")
            assert "principles written" in first and page.inner_text("#response") == ""  # live: before the end
            page.wait_for_selector("#status:text-is('done')", timeout=30_000)
            rounds = page.eval_on_selector_all("#rounds-list li", "items => items.map(i => i.dataset.stage + ' ' + "
                                               "i.dataset.kind + ' ' + i.querySelector('.meta').textContent)")
            assert rounds == ["principles generator principles written", "principles critic principles critique, round 1",
                              "principles refiner principles refined, round 1", "principles critic principles critique, round 2",
                              "response generator response written", "response critic response critique, round 1",
                              "response refiner response refined, round 1", "response critic response critique, round 2"]
            assert "score 2/5" in page.inner_text("#rounds-list li:nth-child(2)")
            response = page.inner_text("#response")
            assert response.startswith("responder for: My <b>boss</b>")  # the query's HTML, shown as text
            assert page.evaluate("window.hacked") is None and page.query_selector("#response b") is None
            assert page.query_selector("#rounds-list img") is None
            assert page.inner_text("#history li") == query
            assert "LM calls" in page.inner_text("#usage")
            page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
            page.close()
    assert problems == []
