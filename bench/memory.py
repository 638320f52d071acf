"""Peak memory of the pipeline's processes while a run goes: the Spark JVM (driver and
executors are one JVM in local mode) and the Python side (the driver program and the
Python workers Spark starts). The local services and load generators are not counted."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psutil

SAMPLE_S = 0.25


def spark_jvm_pid(spark: Any) -> int:
    return int(spark._jvm.java.lang.ProcessHandle.current().pid())


def rss_mb(process: psutil.Process) -> float:
    try:
        return float(process.memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


@dataclass
class PeakMemory:
    """Samples RSS every SAMPLE_S seconds between enter and exit."""

    jvm_pid: int
    jvm_peak_mb: float = 0.0
    python_peak_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        jvm = psutil.Process(self.jvm_pid)
        python = rss_mb(psutil.Process(os.getpid()))
        try:
            workers = [p for p in jvm.children(recursive=True) if "python" in p.name().lower()]
        except psutil.Error:
            workers = []
        python += sum(rss_mb(p) for p in workers)
        self.jvm_peak_mb = max(self.jvm_peak_mb, rss_mb(jvm))
        self.python_peak_mb = max(self.python_peak_mb, python)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def as_extra(self) -> dict[str, float]:
        return {
            "jvm_peak_mb": round(self.jvm_peak_mb, 1),
            "python_peak_mb": round(self.python_peak_mb, 1),
        }
