"""Host memory of a measured phase: the peak resident memory of this process, and the peak of
this process and every process it started (decode workers, a process pool) together, counted
as PSS (a shared page split among the processes that map it), so that torch's libraries, mapped
by every worker, count once and not once per worker."""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import psutil

MIB = 1 << 20


def reset_peak_rss() -> bool:
    """Linux: zero this process's peak-RSS counter, so each phase reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak


def tree_pss_mib() -> float:
    """PSS of this process and all its descendants, now (RSS where PSS cannot be read)."""
    me = psutil.Process()
    total = 0
    for process in [me, *me.children(recursive=True)]:
        try:
            info = process.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / MIB


class TreeMemorySampler:
    """`with TreeMemorySampler() as sampler: ...`, then `sampler.peak_mib`: the largest
    `tree_pss_mib` seen, sampled every `interval` seconds in a thread."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_mib = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_mib = max(self.peak_mib, tree_pss_mib())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, tree_pss_mib())
