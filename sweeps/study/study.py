"""A sweep as a notebook sees it: ``sweeps.load(name, storage=...)`` → plan, statuses, table, report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sweeps.errors import FieldError, SpecError, bad_choice
from sweeps.store import SweepStore

if TYPE_CHECKING:
    import pandas as pd

    from sweeps.study.records import Records
    from sweeps.study.report import ReportFiles

REPORT_DIR = "report"


class Study:
    """One sweep in storage. Reads files only: no Ray, no MLflow."""

    def __init__(self, store: SweepStore):
        self.store = store
        self.name = store.root.name

    @property
    def plan(self) -> list[dict]:
        """Every planned trial: key, readable name and configuration, in grid order."""
        return self.store.plan()

    @property
    def statuses(self) -> dict[str, str]:
        """Trial key → done / stopped / running / failed / pending."""
        alive = self.store.launcher_alive()
        return {row["key"]: self.store.state(row["key"], alive).status for row in self.plan}

    @property
    def workload(self) -> str:
        from sweeps import spec

        return spec.load(self.store.spec_path())[0].workload

    def to_pandas(self) -> pd.DataFrame:
        """The export's rows (one per trial, pending and failed included) as a DataFrame."""
        import pandas as pd

        from sweeps.export import rows

        return pd.DataFrame(rows(self.store))

    def records(self) -> Records:
        """The trials with health flags, grid axes, the main metric and every metric's direction."""
        from sweeps.study import records

        return self._with_metrics(records.load(self.store))

    def _with_metrics(self, data: Records) -> Records:
        """Add what the workload declares: its main metric (the first key metric) and the directions."""
        from sweeps import registry

        workload = registry.get(self.workload)
        data.main = workload.key_metrics[0] if workload.key_metrics else data.main
        data.directions = dict(workload.metric_directions)
        data.workload = workload.name
        return data

    def report(
        self,
        output: str | Path | None = None,
        x: str | None = None,
        y: str | None = None,
        facet: str | None = None,
        include_unhealthy: bool = False,
    ) -> ReportFiles:
        """Write the report (HTML page, PNG/PDF figures, CSV tables); default folder ``<sweep>/report``."""
        from sweeps.study import records
        from sweeps.study.report import ReportOptions, check, write

        folder = Path(output) if output is not None else self.store.root / REPORT_DIR
        options = ReportOptions(x, y, facet, include_unhealthy)
        data = records.load(self.store)
        check(data, options, folder)  # bad options fail before the workload (and torch) is even imported
        return write(self._with_metrics(data), self.store, folder, options)

    def __repr__(self) -> str:
        return f"Study({self.name!r}, {len(self.plan)} trial(s) in {self.store.root.parent})"


def load(name: str, storage: str | Path = "./runs") -> Study:
    """The sweep called ``name`` under ``storage``; a SpecError (with a did-you-mean) when there is none."""
    root = Path(storage).expanduser().resolve()
    store = SweepStore(root / name)
    if not store.spec_path().is_file():
        known = sorted(p.parent.name for p in root.glob("*/sweep.yaml")) if root.is_dir() else []
        if known:
            raise SpecError([bad_choice("sweep", name, known)], str(root))
        raise SpecError([FieldError("sweep", f"no sweep named {name!r} under {root}", name, hint="pass storage=")])
    return Study(store)
