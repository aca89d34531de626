"""The MLflow mirror of a sweep: one parent run per sweep, one child run per trial.

Storage is the source of truth; MLflow is where people browse and compare. Only the
launching process writes to MLflow (trials never do), so the embedded SQLite store sees
one writer even on a cluster. Runs are found again by tags, so a relaunch or a resume
reattaches to the existing parent and child runs instead of duplicating them, and any
result that finished while no driver was listening is mirrored at the next launch.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sweeps.secrets import is_secret, redact
from sweeps.store import COMPLETED_STATUS, FINAL_STATUSES, STOPPED_STATUS, SweepStore

log = logging.getLogger(__name__)

ROLE, SWEEP, KEY, STATUS, SYNCED = (
    "sweeps.role",
    "sweeps.sweep",
    "sweeps.trial_key",
    "sweeps.status",
    "sweeps.synced",
)
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM = 6000


def embedded_uri(storage: Path) -> str:
    """The default tracking store: SQLite inside the storage folder."""
    return f"sqlite:///{(storage / 'mlflow.db').resolve()}"


def embedded_artifacts(storage: Path) -> str:
    return (storage / "mlartifacts").resolve().as_uri()


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as ``a.b`` keys with string values; secrets left out entirely."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if is_secret(str(key)):
            continue
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            out[name] = text[:MAX_PARAM]
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Tracker:
    """Creates, finds and updates a sweep's MLflow runs."""

    def __init__(self, tracking: str | None, storage: Path, experiment: str, sweep: str):
        from mlflow import MlflowClient

        # "Creating initial MLflow database tables..." on every new embedded store says nothing
        # the user needs; real database problems still surface as errors.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        # MLflow's own SQLAlchemy mappings use a deprecated loader strategy: nothing to act on here.
        warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy is deprecated")
        self.embedded = tracking is None
        self.uri = embedded_uri(storage) if self.embedded else tracking
        storage.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.sweep = sweep
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            location = embedded_artifacts(storage) if self.embedded else None
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = found.experiment_id
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(self.experiment_id)
        self.parent_id: str | None = None
        self._children: dict[str, Any] = {}

    # -- the parent run -------------------------------------------------------------------------
    def open_parent(self, workload: str, raw_spec: dict, code_version: Mapping[str, str]) -> str:
        """Find or create the sweep's parent run, mark it running and attach the sweep file."""
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{ROLE}` = 'parent' and tags.`{SWEEP}` = '{self.sweep}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if runs:
            self.parent_id = runs[0].info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
        else:
            tags = {ROLE: "parent", SWEEP: self.sweep, "sweeps.workload": workload}
            self.parent_id = self.client.create_run(self.experiment_id, tags=tags, run_name=self.sweep).info.run_id
        self.client.set_tag(
            self.parent_id, "sweeps.code_version", " ".join(f"{k}={v}" for k, v in code_version.items())
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sweep.yaml"
            path.write_text(yaml.safe_dump(redact(raw_spec), sort_keys=False))
            self.client.log_artifact(self.parent_id, str(path))
        self._load_children()
        return self.parent_id

    def close_parent(self, counts: Mapping[str, int], status: str) -> None:
        if self.parent_id is None:
            return
        stamp = int(time.time() * 1000)
        from mlflow.entities import Metric

        self.client.log_batch(
            self.parent_id, metrics=[Metric(f"trials_{k}", float(v), stamp, 0) for k, v in counts.items()]
        )
        self.client.set_terminated(self.parent_id, status=status)

    # -- child runs ----------------------------------------------------------------------------
    def _load_children(self) -> None:
        self._children = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                f"tags.`{PARENT_TAG}` = '{self.parent_id}'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                key = run.data.tags.get(KEY)
                if key and key not in self._children:
                    self._children[key] = run
            token = page.token
            if not token:
                break

    def child(self, key: str, run_name: str, params: Mapping[str, Any], workload: str) -> str:
        """The trial's run, reattached by trial key or created with its params."""
        from mlflow.entities import Param

        existing = self._children.get(key)
        if existing is not None:
            if existing.info.status != "RUNNING":
                self.client.update_run(existing.info.run_id, status="RUNNING")
            return existing.info.run_id
        tags = {
            PARENT_TAG: self.parent_id,
            SWEEP: self.sweep,
            KEY: key,
            "sweeps.workload": workload,
            STATUS: "running",
        }
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=run_name)
        flat = [Param(k, v) for k, v in flatten(params).items()]
        for chunk in _chunks(flat, 100):
            self.client.log_batch(run.info.run_id, params=chunk)
        self._children[key] = self.client.get_run(run.info.run_id)
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
        for chunk in _chunks(items, 1000):
            self.client.log_batch(run_id, metrics=chunk)

    def finish(self, run_id: str, record: Mapping[str, Any], trial_dir: Path) -> None:
        """Mirror a trial's result.json: metrics, tags, artifacts and final status."""
        from mlflow.entities import RunTag

        status = record.get("status")
        completed = status in FINAL_STATUSES
        self.log_metrics(run_id, record.get("metrics") or {}, step=int(record.get("attempt", 1)))
        label = {COMPLETED_STATUS: "done", STOPPED_STATUS: "stopped"}.get(status, "failed")
        tags = {STATUS: label, "sweeps.attempt": str(record.get("attempt", 1))}
        if status == STOPPED_STATUS:
            tags["sweeps.stopped_by"] = str(record.get("stopped_by", ""))
        tags.update({str(k): str(v) for k, v in (record.get("tags") or {}).items()})
        tags.update({f"missing.{k}": str(v)[:5000] for k, v in (record.get("missing") or {}).items()})
        error = record.get("error") or {}
        if error:
            tags["sweeps.error"] = f"{error.get('type', 'Error')}: {error.get('message', '')}"[:5000]
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        for name in ["result.json", *(record.get("artifacts") or [])]:
            path = trial_dir / name
            if path.is_file():
                self.client.log_artifact(run_id, str(path))
            elif path.is_dir():  # e.g. a LoRA adapter: kept as a folder of the same name
                self.client.log_artifacts(run_id, str(path), artifact_path=path.name)
        self.client.set_terminated(run_id, status="FINISHED" if completed else "FAILED")
        # Last, so that a launcher killed anywhere above leaves the result to be mirrored again.
        self.client.set_tag(run_id, SYNCED, str(record.get("finished_at")))

    def is_synced(self, key: str, record: Mapping[str, Any]) -> bool:
        run = self._children.get(key)
        return bool(
            run
            and run.info.status in ("FINISHED", "FAILED")
            and run.data.tags.get(SYNCED) == str(record.get("finished_at"))
        )

    def sync(
        self,
        store: SweepStore,
        names: Mapping[str, str],
        params: Mapping[str, Mapping[str, Any]],
        workload: str,
    ) -> int:
        """Mirror every result in storage that MLflow has not seen yet; returns how many."""
        count = 0
        for key in store.result_keys():
            record = store.result(key)
            if not record or self.is_synced(key, record):
                continue
            run_id = self.child(key, names.get(key, key), params.get(key, record.get("params", {})), workload)
            self.finish(run_id, record, store.trial_dir(key))
            self._children[key] = self.client.get_run(run_id)
            count += 1
        return count

    def mark_interrupted(self, keys: Iterable[str]) -> None:
        """Runs of trials that were cut off end as KILLED; a resume reopens them."""
        for key in keys:
            run = self._children.get(key)
            if run is not None:
                self.client.set_tag(run.info.run_id, STATUS, "pending")
                self.client.set_terminated(run.info.run_id, status="KILLED")

    def runs_url(self, base: str | None = None) -> str:
        root = base or (self.uri if self.uri.startswith("http") else "http://127.0.0.1:5000")
        return f"{root.rstrip('/')}/#/experiments/{self.experiment_id}/runs"
