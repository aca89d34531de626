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
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from sweeps.errors import FieldError, SpecError
from sweeps.secrets import is_secret, redact
from sweeps.store import COMPLETED_STATUS, FINAL_STATUSES, STOPPED_STATUS, SweepStore
from sweeps.workload import HEALTH_PREFIX

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
    """Nested params as ``a.b`` keys with string values; secrets left out entirely.

    A ``None`` (a setting left unset: no quantization, the task's own max_new_tokens) is left
    out too: as the text "None" on every run it only hides the parameters that are set.
    """
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if is_secret(str(key)) or value is None:
            continue
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            out[name] = text[:MAX_PARAM]
    return out


def iso_utc(seconds: float) -> str:
    """A Unix time as ISO 8601 in UTC to the millisecond (``2025-05-01T12:00:00.123Z``), readable in MLflow."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def status_label(record: Mapping[str, Any]) -> str:
    """The trial's state as MLflow shows it (``sweeps.status``): done, unhealthy, stopped or failed."""
    status = record.get("status")
    if status == COMPLETED_STATUS:
        return "unhealthy" if health_marks(record) else "done"
    return "stopped" if status == STOPPED_STATUS else "failed"


def health_marks(record: Mapping[str, Any]) -> list[str]:
    """What is wrong with a finished trial's outputs, from its ``health.*`` tags (``empty outputs``)."""
    tags = record.get("tags") or {}
    return [k.removeprefix(HEALTH_PREFIX).replace("_", " ") for k in sorted(tags) if k.startswith(HEALTH_PREFIX)]


def marked_name(name: str, record: Mapping[str, Any]) -> str:
    """The run name with the trial's trouble after it (``✗ failed``, ``■ stopped``, ``⚠ empty outputs +1``:
    the first of its health problems and how many more), so a table without extra columns shows it."""
    label = status_label(record)
    if label == "failed":
        return f"{name} ✗ failed"
    if label == "stopped":
        return f"{name} ■ stopped"
    if label == "unhealthy":
        first, *more = health_marks(record)
        return f"{name} ⚠ {first}" + (f" +{len(more)}" if more else "")
    return name


def final_points(record: Mapping[str, Any], progress: Iterable[str]) -> list[tuple[str, float, int, int]]:
    """A result's metrics as MLflow points: each once, at step 0, stamped with the trial's end.

    Step 0 keeps one meaning per step (progress is logged at steps from 1), and MLflow draws a
    metric whose latest step is 0 as one bar per run. A metric the trial already drew as a
    curve (``progress``: a training's loss, samples done) keeps its curve, whose last point is
    its final value. The fixed stamp makes a second mirroring of the same result (a launcher
    killed before it marked the run synced) a no-op instead of a second point.
    """
    stamp = int(float(record.get("finished_at") or 0) * 1000)
    drawn = set(progress)
    return [(k, float(v), stamp, 0) for k, v in (record.get("metrics") or {}).items() if k not in drawn]


def is_http(uri: str | None) -> bool:
    return bool(uri) and uri.split(":", 1)[0].lower() in ("http", "https")


#: MLflow's HTTP client settings for the launcher: a request gives up after seconds, not
#: minutes (MLflow's defaults: 120 s timeout, 7 retries with backoff). The mirror retries
#: on its own, beside the sweep. A value the user set in the environment is kept.
BOUNDED_REQUESTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    # MLflow prints two "View run" lines to stdout (after one more request) at each run's end
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def bound_requests() -> None:
    """Bound MLflow's HTTP requests in this process (MLflow reads these settings at each request)."""
    for name, value in BOUNDED_REQUESTS.items():
        os.environ.setdefault(name, value)
    # urllib3 logs each retry of a refused connection; the mirror says once that the server is down.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def shown_uri(uri: str) -> str:
    """A tracking URI without any credentials written into it (``http://user:pw@host`` → ``http://host``)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def probe(uri: str, seconds: float = 5.0) -> str | None:
    """Why the MLflow server at ``uri`` does not answer within ``seconds``, or None when it does.

    Any HTTP answer counts (``/health`` needs no login): credentials are the client's next check.
    """
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=seconds, allow_redirects=False)
    except requests.exceptions.Timeout:
        return f"no answer within {seconds:g} s"
    except requests.exceptions.ConnectionError as exc:
        reason = str(getattr(exc.args[0], "reason", "") or "") if exc.args else ""
        if "refused" in reason.lower() or "refused" in str(exc).lower():
            return "connection refused"
        return "cannot connect" + (f" ({reason.split(': ', 1)[-1][:120]})" if reason else "")
    except requests.exceptions.RequestException as exc:
        return f"{type(exc).__name__}"
    return None


def _better(run: Any, known: Any) -> bool:
    """Whether ``run`` should stand for its trial rather than ``known`` (a mirrored run beats an empty twin)."""
    return known is None or _rank(run) > _rank(known)


def _rank(run: Any) -> tuple[bool, bool]:
    return SYNCED in run.data.tags, bool(run.data.params)


def connect(tracking: str | None, storage: Path, experiment: str, sweep: str, seconds: float = 5.0) -> Tracker:
    """The sweep's tracker, once its server has answered.

    A tracking server that does not answer at launch is bad input (exit code 2) reported
    within seconds, before anything is written or any trial starts; the user decides
    whether to start it, fix ``tracking:``, or track locally.
    """
    if not is_http(tracking):
        return Tracker(tracking, storage, experiment, sweep)
    url = shown_uri(tracking)
    hint = "start the server, fix `tracking:`, or launch with `--set tracking=null` to track in the embedded store"
    reason = probe(tracking, seconds)
    if reason:
        raise SpecError([FieldError("tracking", f"no MLflow server answers at {url}: {reason}", url, hint=hint)])
    try:
        return Tracker(tracking, storage, experiment, sweep)
    except Exception as exc:
        first = (str(exc).replace(tracking, url).splitlines() or [type(exc).__name__])[0][:200]
        raise SpecError(
            [FieldError("tracking", f"the MLflow server at {url} could not be used: {first}", url, hint=hint)]
        ) from None


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Tracker:
    """Creates, finds and updates a sweep's MLflow runs.

    Called from one thread at a time (the launcher's mirror worker): it caches the runs it knows.
    """

    def __init__(self, tracking: str | None, storage: Path, experiment: str, sweep: str):
        from mlflow import MlflowClient

        if is_http(tracking):
            bound_requests()

        # "Creating initial MLflow database tables..." on every new embedded store says nothing
        # the user needs; real database problems still surface as errors.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        # MLflow's own SQLAlchemy mappings use a deprecated loader strategy: nothing to act on here.
        warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy is deprecated")
        self.embedded = tracking is None
        self.storage = storage
        self.uri = embedded_uri(storage) if self.embedded else tracking
        storage.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.sweep = sweep
        self.experiment_id = self._experiment(experiment)
        self.parent_id: str | None = None
        self._children: dict[str, Any] = {}
        #: trial keys whose run creation failed: the server may have created the run after all
        self._suspect: set[str] = set()
        #: runs created whose params are not logged yet
        self._unlogged: dict[str, Mapping[str, Any]] = {}
        #: trial keys whose run this tracker ended (its cached status is out of date)
        self._ended: set[str] = set()
        #: each trial's run name before any mark of its outcome (``✗ failed``)
        self._names: dict[str, str] = {}
        #: the id of the runs-table view this tracker saved on the experiment (see sweeps.mlflow_view)
        self.view_id: str | None = None

    def _experiment(self, name: str) -> str:
        """The experiment's id, created if MLflow has none by that name (restored if deleted).

        Two launchers may start at once on a new experiment: the one whose create loses the race
        takes the experiment the other just made.
        """
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            location = embedded_artifacts(self.storage) if self.embedded else None
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except MlflowException:
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    # -- the parent run -------------------------------------------------------------------------
    def find_parent(self) -> str | None:
        """The sweep's parent run, if MLflow has one (no other change)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{ROLE}` = 'parent' and tags.`{SWEEP}` = '{self.sweep}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if runs:
            self.parent_id = runs[0].info.run_id
        return self.parent_id if runs else None

    def ensure_parent(self, workload: str) -> str:
        """The sweep's parent run, created (finished, with nothing in it) when MLflow has none."""
        if self.find_parent() is None:
            tags = {ROLE: "parent", SWEEP: self.sweep, "sweeps.workload": workload}
            self.parent_id = self.client.create_run(self.experiment_id, tags=tags, run_name=self.sweep).info.run_id
            self.client.set_terminated(self.parent_id)
        return str(self.parent_id)

    def open_parent(self, workload: str, raw_spec: dict, code_version: Mapping[str, str]) -> str:
        """Find or create the sweep's parent run, mark it running and attach the sweep file."""
        if self.find_parent() is not None:
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
                if key and _better(run, self._children.get(key)):
                    self._children[key] = run
            token = page.token
            if not token:
                break

    def _find_child(self, key: str) -> list:
        """The sweep's runs for one trial key, oldest first."""
        return list(
            self.client.search_runs(
                [self.experiment_id],
                f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{KEY}` = '{key}'",
                order_by=["attributes.start_time ASC"],
                max_results=100,
            )
        )

    def child(self, key: str, run_name: str, params: Mapping[str, Any], workload: str) -> str:
        """The trial's run, reattached by trial key or created with its params.

        Safe to call again after it raised: a run whose creation timed out may exist on the
        server anyway, so it is looked up before another is created (see ``drop_duplicates``).
        """
        from mlflow.entities import Param

        existing = self._children.get(key)
        if existing is None and key in self._suspect:
            found = self._find_child(key)
            existing = found[0] if found else None
            if existing is not None:
                self._children[key] = existing
                self._unlogged.setdefault(key, params)
        if existing is None:
            tags = {
                PARENT_TAG: self.parent_id,
                SWEEP: self.sweep,
                KEY: key,
                "sweeps.workload": workload,
                STATUS: "running",
            }
            try:
                existing = self.client.create_run(self.experiment_id, tags=tags, run_name=run_name)
            except Exception:
                self._suspect.add(key)
                raise
            self._children[key] = existing
            self._unlogged[key] = params
        elif key not in self._unlogged and (key in self._ended or existing.info.status != "RUNNING"):
            # running again: without the mark of how it ended last time, under the plan's name
            self.client.update_run(existing.info.run_id, status="RUNNING", name=run_name)
            self._ended.discard(key)
        elif existing.info.run_name != run_name and key not in self._ended:
            self.client.update_run(existing.info.run_id, name=run_name)
        self._names[key] = run_name
        run_id = existing.info.run_id
        if key in self._unlogged:
            flat = [Param(k, v) for k, v in flatten(self._unlogged[key]).items()]
            for chunk in _chunks(flat, 100):
                self.client.log_batch(run_id, params=chunk)
            del self._unlogged[key]
        return run_id

    def drop_duplicates(self, key: str, run_id: str) -> None:
        """Delete the other runs of a trial whose run creation once timed out.

        A request that timed out on this side may still be carried out when a hung server
        wakes up, leaving an empty twin of the trial's run; it is deleted so that MLflow keeps
        exactly one run per trial.
        """
        if key not in self._suspect:
            return
        for run in self._find_child(key):
            if run.info.run_id != run_id:
                self.client.delete_run(run.info.run_id)
        self._suspect.discard(key)

    def log_points(self, run_id: str, points: Sequence[tuple[str, float, int, int]]) -> None:
        """Log ``(name, value, timestamp ms, step)`` points, up to 1000 per request."""
        from mlflow.entities import Metric

        items = [Metric(name, float(value), stamp, step) for name, value, stamp, step in points]
        for chunk in _chunks(items, 1000):
            self.client.log_batch(run_id, metrics=chunk)

    def finish(self, run_id: str, record: Mapping[str, Any], trial_dir: Path) -> None:
        """Mirror a trial's result.json: metrics, tags, artifacts, final status and marked name."""
        from mlflow.entities import RunTag

        key = str(record.get("key") or "")
        if key:
            self.drop_duplicates(key, run_id)
        status = record.get("status")
        completed = status in FINAL_STATUSES
        run = self.client.get_run(run_id)
        self.log_points(run_id, final_points(record, _curves(run)))
        tags = {STATUS: status_label(record), "sweeps.attempt": str(record.get("attempt", 1))}
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
        name = marked_name(self._names.get(key) or _unmarked(run.info.run_name or key), record)
        if name != run.info.run_name:
            self.client.update_run(run_id, name=name)
        if key:
            self._ended.add(key)
        # Last, so that a launcher killed anywhere above leaves the result to be mirrored again.
        self.client.set_tag(run_id, SYNCED, synced_stamp(record))

    def is_synced(self, key: str, record: Mapping[str, Any]) -> bool:
        run = self._children.get(key)
        return bool(
            run and run.info.status in ("FINISHED", "FAILED") and run.data.tags.get(SYNCED) == synced_stamp(record)
        )

    def unsynced(self, store: SweepStore) -> list[tuple[str, dict]]:
        """``(key, record)`` of the results in storage that MLflow has not seen (no requests: after ``open_parent``)."""
        out = []
        for key in store.result_keys():
            record = store.result(key)
            if record and not self.is_synced(key, record):
                out.append((key, record))
        return out

    def sync(
        self,
        store: SweepStore,
        names: Mapping[str, str],
        params: Mapping[str, Mapping[str, Any]],
        workload: str,
    ) -> int:
        """Mirror every result in storage that MLflow has not seen yet; returns how many."""
        count = 0
        for key, record in self.unsynced(store):
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
        """The experiment's runs table in MLflow's model-training mode, in the sweep's saved view once it has one."""
        from sweeps.mlflow_view import runs_url

        root = base or (self.uri if self.uri.startswith("http") else "http://127.0.0.1:5000")
        return runs_url(root, self.experiment_id, self.view_id)

    def parent_url(self, base: str | None = None) -> str | None:
        """The parent run's page (its description says how to read the sweep), once known."""
        if self.parent_id is None:
            return None
        from sweeps.mlflow_view import run_url

        root = base or (self.uri if self.uri.startswith("http") else "http://127.0.0.1:5000")
        return run_url(root, self.experiment_id, self.parent_id)

    def find_view(self) -> str | None:
        """The sweep's saved runs-table view, if the experiment has it (sets ``view_id``)."""
        from sweeps.mlflow_view import view_id, view_tag

        tags = self.client.get_experiment(self.experiment_id).tags
        self.view_id = view_id(self.sweep) if view_tag(self.sweep) in tags else None
        return self.view_id

    def set_experiment_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_experiment_tag(self.experiment_id, key, value)


def synced_stamp(record: Mapping[str, Any]) -> str:
    """The ``sweeps.synced`` tag of a mirrored result: when its trial finished (which tells attempts apart)."""
    finished = record.get("finished_at")
    return iso_utc(finished) if isinstance(finished, (int, float)) else str(finished)


def _curves(run: Any) -> set[str]:
    """Metrics the run already has at a step of its own (progress curves), from its latest values."""
    return {m.key for m in run.data.to_proto().metrics if m.step >= 1}


_MARKS = (" ✗ failed", " ■ stopped", " ⚠ ")


def _unmarked(name: str) -> str:
    """A run name without the mark of how its trial ended (a result mirrored by a later launcher)."""
    for mark in _MARKS:
        if mark in name:
            return name.split(mark, 1)[0]
    return name
