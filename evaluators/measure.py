"""Peak memory of a trial: allocator statistics on GPUs, sampled resident memory on CPUs."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import psutil

from evaluators.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:  # MB is read by evaluators.summary when a sweep is planned, which needs no torch
    torch = lazy_module("torch")

MB = 1024 * 1024


class PeakMemory:
    """Tracks the peak memory between ``start()`` and ``stop()``, in MiB.

    On CUDA this is the allocator's peak of allocated tensor memory on the device. On CPU
    there is no allocator statistic, so a thread samples the process's resident set every
    few milliseconds; short spikes between samples can be missed.
    """

    def __init__(self, device: str, interval: float = 0.005):
        self.device = device
        self.interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        self._peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self._peak = max(self._peak, process.memory_info().rss)
            self._stop.wait(self.interval)

    def stop(self) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / MB
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, psutil.Process().memory_info().rss)
        return self._peak / MB
