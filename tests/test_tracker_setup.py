"""Two launchers that start at once on a new experiment both find it: one creates it, the other
must not fail on the name the first just took."""

from __future__ import annotations

import threading

from mlflow import MlflowClient

from sweeps.tracking import Tracker


def test_launchers_starting_at_once_share_one_new_experiment(tmp_path):
    storage = tmp_path / "runs"
    Tracker(None, storage, "warm-up", "warm-up")  # the store's tables exist before the race
    starters = 6
    barrier = threading.Barrier(starters)
    found: list[str] = []
    errors: list[BaseException] = []

    def start(index: int) -> None:
        barrier.wait()
        try:
            found.append(Tracker(None, storage, "new-study", f"sweep-{index}").experiment_id)
        except BaseException as exc:  # noqa: BLE001 - the failure is what the test reports
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    experiment = MlflowClient(Tracker(None, storage, "new-study", "check").uri).get_experiment_by_name("new-study")
    assert found == [experiment.experiment_id] * starters
