"""The report page in a real browser: Debian's headless Chromium, driven by Playwright.

Needs ``apt-get install chromium`` (Playwright's own browser download is not used); skipped,
with that reason, where /usr/bin/chromium is absent (the session's ``chromium`` fixture).
"""

from __future__ import annotations

import json

import pytest
from report_helpers import COSTS, TRIALS, front_keys, key_of, write_study

import sweeps


def mean(members: list[dict], metric: str) -> float:
    return sum(m[metric] for m in members) / len(members)


def expected_views() -> dict:
    """From the constructed records: per task, the configurations (seeds merged) and front sizes, and
    the window × cache cells of healthy finished snapkv trials."""
    configs: dict[str, dict[str, list[dict]]] = {}
    for params, status, metrics, tags in TRIALS:
        if status == "completed" and not tags:
            config = json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True)
            configs.setdefault(params["task"], {}).setdefault(config, []).append({**metrics, "key": key_of(params)})
    out = {}
    for task, by_config in configs.items():
        fronts = 0
        for cost, direction in COSTS.items():
            points = [
                (
                    " ".join(m["key"] for m in ms),
                    sum(m[cost] for m in ms) / len(ms),
                    sum(m["score"] for m in ms) / len(ms),
                )
                for ms in by_config.values()
            ]
            fronts += len(front_keys(points, direction == "min"))
        cells = {
            (c["window_size"], c["cache_size"]): mean(ms, "score")
            for c, ms in ((json.loads(k), v) for k, v in by_config.items())
            if "window_size" in c
        }
        out[task] = {"points": len(by_config) * len(COSTS), "front": fronts, "cells": cells}
    return out


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory, chromium):
    root = tmp_path_factory.mktemp("runs")
    write_study(root)
    study = sweeps.load("study", storage=root)
    files = study.report()
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)  # a 4 MB page with plotly inlined, on a busy 2-core machine
    page.goto(files.page.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
    yield study, page
    page.close()


def test_fronts_render_every_configuration_and_outline_the_front(browser_page):
    _, page = browser_page
    for task, expected in expected_views().items():
        section = page.query_selector(f"section#section-front-tiny-llama-{task}")
        points = section.query_selector_all("g.trace.scatter path.point")
        assert len(points) == expected["points"], task
        outlined = [p for p in points if p.evaluate("e => e.style.strokeWidth") == "2px"]
        assert len(outlined) == expected["front"], task
        assert section.query_selector_all("path.hline, .shapelayer path"), "baseline reference line"


def test_heatmaps_render_one_labelled_cell_per_configuration(browser_page):
    _, page = browser_page
    labels = {}
    for section in page.query_selector_all("section[id^=section-heatmap]"):
        title = section.query_selector(".gtitle").text_content()
        labels[title] = sorted(float(t.text_content()) for t in section.query_selector_all(".hm text"))
    expected = {
        f"task={task} · technique=snapkv · pooling=maxpool": sorted(views["cells"].values())
        for task, views in expected_views().items()
    }
    assert labels.keys() == expected.keys()
    for title, values in expected.items():
        assert labels[title] == pytest.approx(values, abs=5e-4), title  # labels show 3 significant digits


def test_completeness_shows_the_hole(browser_page):
    _, page = browser_page
    holes = page.query_selector_all("table.completeness td.hole")
    assert len(holes) == 1  # niah was never run with streamingllm
    assert page.query_selector_all("table.completeness td.broken")  # the failed and the unhealthy trial


def test_hover_names_the_trial_its_key_and_config(browser_page):
    study, page = browser_page
    names = {row["key"]: row["name"] for row in study.plan}
    point = page.query_selector("section#section-front-tiny-llama-passkey g.trace.scatter path.point")
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("g.hovertext", timeout=10_000)
    text = page.query_selector("g.hovertext").text_content()
    shown = [key for key in names if key in text]
    assert shown and all(names[key] in text for key in shown)
    assert "technique=" in text and "kv_cache_mb=" in text
