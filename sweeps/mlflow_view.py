"""How the MLflow UI opens on a sweep: its runs table as a saved view, in model-training mode.

What MLflow 3.17's UI takes from outside (read in its frontend source, ``mlflow/server/js``):

- URL parameters of the runs page (``#/experiments/<id>/runs?...``): ``workflowType``
  (``machine_learning`` switches the UI from its GenAI mode to model training),
  ``compareRunsMode`` (``TABLE``/``CHART``), the search facets ``searchFilter``,
  ``orderByKey``, ``orderByAsc``, ``startTime``, ``lifecycleFilter``, ``datasetsFilter``,
  ``modelVersionFilter``, and ``viewStateShareKey``. Columns cannot be chosen by URL.
- ``viewStateShareKey=<id>`` loads the experiment tag ``mlflow.sharedViewState.<id>``: a saved
  view (``{name, createdAt, state}``, listed under *Views*) whose ``state`` holds the facets
  above and the table's UI state — ``selectedColumns``, ``columnOrder``, ``columnWidths``,
  ``runsHiddenMode``, ``compareRunCharts``, ``compareRunSections``, ``groupBy``... — but never
  ``runsExpanded``, ``runsPinned`` or ``runsHidden``. It applies only when the URL carries no
  facet of its own.
- Child runs nest under a collapsed parent only while the table is sorted by creation time
  (``attributes.start_time``) without a filter; sorted by a metric, every run is a row.
- The experiment tag ``mlflow.experimentKind`` = ``custom_model_development`` marks the
  experiment as model training (the UI's own choice otherwise, often GenAI).

So the sweep's view sorts by the main metric (every trial a row, the best first, runs
without it — the parent, failed trials — last), selects the varying parameters, the key
metrics and ``sweeps.status``, widens the run name, shows every run in the charts (MLflow
hides all but 10 by default) and charts the main metric against memory.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

VIEW_PREFIX = "mlflow.sharedViewState."
KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
#: the URL parameter that switches the UI to model training, whatever the browser chose last
MODEL_TRAINING_MODE = {"workflowType": "machine_learning"}
RUN_NAME_COLUMN = "attributes.`Run Name`"
STATUS_TAG = "sweeps.status"
#: wide enough for a run name with its mark of trouble (``c256 · snapkv w32 maxpool ⚠ empty outputs``)
RUN_NAME_WIDTH = 340
#: the chart view's sections: the main metric against its costs, and one bar per run for each metric
TRADEOFFS, BARS = "sweeps-tradeoffs", "sweeps-key-metrics"


@dataclass(frozen=True)
class RunsView:
    """What the sweep's runs table shows: its columns in order and the sort."""

    sweep: str
    #: the parameters that vary across the sweep's trials
    params: Sequence[str]
    #: key metrics first (the main one first), then metrics every run shares as an axis
    metrics: Sequence[str]
    main: str
    lower_is_better: bool
    #: (x, y) metric pairs charted as scatter plots: the main metric against each cost
    tradeoffs: Sequence[tuple[str, str]] = field(default_factory=tuple)


def view_id(sweep: str) -> str:
    """The saved view's id: a share key and part of a tag name, so letters, digits, ``-`` and ``_`` only."""
    return "sweep-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", sweep).strip("-") or "sweep")


def view_tag(sweep: str) -> str:
    return VIEW_PREFIX + view_id(sweep)


def runs_url(root: str, experiment_id: str, view: str | None = None) -> str:
    """The runs table in model-training mode, in the saved ``view`` when there is one."""
    query = {**MODEL_TRAINING_MODE, **({"viewStateShareKey": view} if view else {})}
    return f"{root.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def run_url(root: str, experiment_id: str, run_id: str) -> str:
    """A run's page in model-training mode (in GenAI mode MLflow files it under "Evaluations")."""
    return f"{root.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{urlencode(MODEL_TRAINING_MODE)}"


def column(kind: str, name: str) -> str:
    """MLflow's column key: ``metrics.`score```, ``params.`cache_size```, ``tags.`sweeps.status```."""
    return f"{kind}.`{name}`"


def state(view: RunsView) -> dict:
    """The saved view's ``state``: search facets and the table's and charts' UI state."""
    columns = [
        column("tags", STATUS_TAG),
        *(column("metrics", m) for m in view.metrics),
        *(column("params", p) for p in view.params),
    ]
    charts = _charts(view) if view.tradeoffs else []
    sections = [
        {"uuid": uuid, "name": name, "display": True, "isReordered": False}
        for uuid, name in ((TRADEOFFS, f"{view.main} against its costs"), (BARS, "Metrics (one bar per run)"))
    ]
    return {
        "searchFilter": "",
        "orderByKey": column("metrics", view.main),
        "orderByAsc": view.lower_is_better,
        "selectedColumns": columns,
        "columnOrder": [RUN_NAME_COLUMN, *columns],
        "columnWidths": {RUN_NAME_COLUMN: RUN_NAME_WIDTH},
        "runsHiddenMode": "SHOW_ALL",
        # without charts of its own, MLflow draws its defaults: a bar per run for a final metric,
        # a line for a curve (a training's loss), which is what a sweep without costs wants
        "compareRunCharts": charts or None,
        "compareRunSections": sections if charts else None,
        "isAccordionReordered": bool(charts),  # the sections in the order above, not alphabetical
    }


def _charts(view: RunsView) -> list[dict]:
    """The main metric against each cost (scatter), then one bar per run for each metric of the view."""
    scatters = [
        {
            "uuid": f"sweeps-scatter-{i}",
            "type": "SCATTER",
            "xaxis": {"key": x, "type": "METRIC"},
            "yaxis": {"key": y, "type": "METRIC"},
            "runsCountToCompare": 1000,
            "metricSectionId": TRADEOFFS,
            "isGenerated": False,
            "deleted": False,
        }
        for i, (x, y) in enumerate(view.tradeoffs)
    ]
    bars = [
        {
            "uuid": f"sweeps-bar-{i}",
            "type": "BAR",
            "metricKey": metric,
            "metricSectionId": BARS,
            "isGenerated": False,
            "deleted": False,
        }
        for i, metric in enumerate(view.metrics)
    ]
    return scatters + bars


def experiment_tags(view: RunsView) -> dict[str, str]:
    """The experiment tags that make MLflow open the sweep as model training, in its saved view."""
    envelope = {"name": f"sweep {view.sweep}", "createdAt": int(time.time() * 1000), "state": json.dumps(state(view))}
    return {KIND_TAG: MODEL_TRAINING, view_tag(view.sweep): json.dumps(envelope)}
