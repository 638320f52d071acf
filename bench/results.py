"""Benchmark figures and their reports: bench/results/latest.json and latest.md."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass
class Run:
    name: str
    records: int
    seconds: float
    what: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["records_per_s"] = round(self.records_per_s, 1)
        return {k: v for k, v in data.items() if v is not None and v != {}}


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Figures where lower is better (latencies): name -> {"value": ..., "target": ...}.
    limits: dict[str, dict[str, float]] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def run(self, name: str) -> Run | None:
        return next((r for r in self.runs if r.name == name), None)

    def ratio(self, name: str, numerator: str, denominator: str, target: float) -> None:
        top, bottom = self.run(numerator), self.run(denominator)
        if top and bottom and bottom.records_per_s:
            self.ratios[name] = round(top.records_per_s / bottom.records_per_s, 3)
            self.targets[name] = target

    def limit(self, name: str, value: float | None, target: float) -> None:
        if value is not None:
            self.limits[name] = {"value": value, "target": target}

    def write(self, directory: Path = RESULTS, stem: str = "latest") -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md``."""
        directory.mkdir(parents=True, exist_ok=True)
        machine = {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        data = {
            "started_at": self.started_at,
            "machine": machine,
            "runs": [r.to_json() for r in self.runs],
            "ratios": self.ratios,
            "targets": self.targets,
            "limits": self.limits,
            "notes": self.notes,
        }
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        json_path.write_text(json.dumps(data, indent=2) + "\n")
        md_path.write_text(self.markdown(machine))
        return json_path, md_path

    def markdown(self, machine: dict[str, Any]) -> str:
        lines = [
            f"# Benchmark {self.started_at}",
            "",
            f"{machine['cores']} cores, Python {machine['python']}, {machine['platform']}. "
            "All runs in one go on the same machine; ratios are computed within this run.",
            "",
            "| run | records | seconds | records/s | p50 ms | p99 ms | what |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.runs:
            p50, p99 = ("" if ms is None else f"{ms:.0f}" for ms in (r.p50_ms, r.p99_ms))
            lines.append(
                f"| {r.name} | {r.records:,} | {r.seconds:.1f} | {r.records_per_s:,.0f} | "
                f"{p50} | {p99} | {r.what} |"
            )
        lines += ["", "| ratio | value | target |", "|---|---:|---:|"]
        for name, value in self.ratios.items():
            target = self.targets[name]  # ratio() sets both
            mark = " (met)" if value >= target else " (missed)"
            lines.append(f"| {name} | {value:.3f}{mark} | {target} |")
        if self.limits:
            lines += ["", "| latency (ms, or ours over the anchor's) | value | target (at most) |"]
            lines += ["|---|---:|---:|"]
            for name, limit in self.limits.items():
                mark = " (met)" if limit["value"] <= limit["target"] else " (missed)"
                digits = 3 if limit["target"] < 10 else 0  # a ratio, or milliseconds
                shown = [f"{v:.{digits}f}" for v in limit.values()]
                lines.append(f"| {name} | {shown[0]}{mark} | {shown[1]} |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"
