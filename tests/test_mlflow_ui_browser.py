"""What `sweeps ui` prints, opened as a new user would: headless Chromium (Playwright) against the
real `mlflow server` that `sweeps ui` starts on the session's launched sweep."""

from __future__ import annotations

import pytest
from mlflow_server import SweepsUi

from sweeps.store import SweepStore

#: MLflow's column ids: the run name, and params/metrics/tags as ``kind.`name```
RUN_NAME = "attributes.`Run Name`"


@pytest.fixture(scope="module")
def served(launched_sweep):
    """`sweeps ui readable`: its runs-table link, its sweep-run link, the plan, the store."""
    _, plan, _, _ = launched_sweep
    ui = SweepsUi("readable", plan.spec.storage_path)
    try:
        link = ui.start()
        yield link, ui.link("report): "), plan, SweepStore(plan.spec.sweep_dir)
    finally:
        ui.stop()


def open_page(chromium, url: str, ready: str):
    # wide: the table draws only the columns in view (and MLflow's assistant panel takes a third)
    page = chromium.new_page(viewport={"width": 2600, "height": 1000})
    page.set_default_timeout(120_000)  # the UI's first load on a busy 2-core machine
    page.goto(url)
    page.wait_for_selector(ready)
    return page


def test_the_printed_link_shows_every_trial_with_its_varying_name_and_key_metrics(served, chromium):
    link, _, plan, _ = served
    assert "workflowType=machine_learning" in link and "viewStateShareKey=sweep-readable" in link
    page = open_page(chromium, link, ".ag-header-cell[col-id='metrics.`score`']")
    try:
        names = [plan.run_name(t) for t in plan.trials]
        for name in names:  # every trial is a row of its own: nothing to expand
            page.get_by_text(name, exact=True).first.wait_for()
        columns = {h.get_attribute("col-id") for h in page.query_selector_all(".ag-header-cell[col-id]")}
        assert {
            RUN_NAME,
            "metrics.`score`",
            "metrics.`kv_cache_mb`",
            "metrics.`kv_cache_tokens`",
            "metrics.`kv_budget_tokens`",
            "params.`technique`",
            "params.`cache_size`",
            "tags.`sweeps.status`",
        } <= columns
        # each name's link, and whether its text fits: a clipped link is narrower than its text
        shown = page.eval_on_selector_all(
            f".ag-cell[col-id='{RUN_NAME}'] a",
            """links => links.map(a => {
                const text = document.createRange();
                text.selectNodeContents(a);
                const fits = text.getBoundingClientRect().width <= a.getBoundingClientRect().width + 0.5;
                return [a.innerText.trim(), fits];
            })""",
        )
        assert sorted(text for text, _ in shown) == sorted([*names, "readable"])  # the trials and the sweep's run
        assert all(whole for _, whole in shown), shown  # no name is cut off
        assert not page.get_by_text("Judges", exact=True).count()  # model training, not the GenAI pages
    finally:
        page.close()


def test_the_sweeps_run_tells_how_to_read_it_and_carries_the_report(served, chromium):
    _, sweep_run, _, _ = served
    page = open_page(chromium, sweep_run, "text=How to read this sweep")
    try:
        assert page.get_by_text("Best per model and task by score").count()
        assert not page.get_by_text("Judges", exact=True).count()  # model training here too
    finally:
        page.close()
    assert sweep_run.endswith("?workflowType=machine_learning")
    page = open_page(chromium, sweep_run.replace("?", "/artifacts?"), "text=summary.json")
    try:
        page.get_by_text("report", exact=True).first.click()
        page.get_by_text("report.html", exact=True).first.wait_for()
        assert page.get_by_text("completeness.png", exact=True).count()
    finally:
        page.close()


def test_the_chart_view_shows_every_run_and_the_main_metric_against_memory(served, chromium):
    link, _, plan, _ = served
    page = open_page(chromium, f"{link}&compareRunsMode=CHART", "text=score against its costs")
    try:
        page.get_by_text("Metrics (one bar per run)").first.wait_for()
        for name in [plan.run_name(t) for t in plan.trials]:
            page.get_by_text(name, exact=True).first.wait_for()
        # MLflow shows only the first 10 runs unless told otherwise: here none is hidden
        assert page.get_by_text("Hide run").count() == len(plan.trials) + 1
        assert not page.get_by_text("Show run").count()
    finally:
        page.close()
