"""The chaos run's figures as a Markdown section, and their place in docs/reliability.md
(between the soak markers, replaced on every `make soak`)."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path

import psutil

from tests.chaos.harness import ChaosFigures

BEGIN = "<!-- soak figures: written by `make soak` -->"
END = "<!-- end of soak figures -->"


def render(figures: ChaosFigures) -> str:
    plan = figures.plan
    rates = ", ".join(f"{name} {rate:g}/s" for name, rate in plan.rates.items())
    exits = ", ".join(str(code) for code in figures.driver_exits) or "none"
    catch_up = "not within the run" if figures.catch_up_s is None else f"{figures.catch_up_s:.0f} s"
    lines = [
        f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, seed {plan.seed} "
        f"({psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.system()}); result: **{'passed' if figures.ok else 'FAILED'}**.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| production | {figures.produced_s / 60:.1f} min at {rates} |",
        f"| overload | x{plan.overload_factor:g} for {plan.overload_s:.0f} s |",
        f"| driver SIGKILLs | {figures.kills} |",
        f"| driver exits on its own (exit codes) | {exits} |",
        f"| Kafka broker restarts | {figures.kafka_restarts} |",
        f"| AWS API server restarts | {figures.aws_restarts} |",
        f"| records produced and checked by id | {figures.records_checked:,} |",
        f"| records sent again after a failed send | {figures.resent:,} |",
        f"| driver peak memory (whole process tree) | {figures.peak_rss_mb:,.0f} MB |",
        f"| driver peak memory during the overload | {figures.peak_rss_overload_mb:,.0f} MB "
        f"(ceiling {plan.memory_ceiling_mb:,.0f} MB) |",
        f"| largest backlog (produced, not yet processed or quarantined) | "
        f"{figures.max_backlog:,} |",
        f"| overload's backlog processed, after its end | {catch_up} |",
        f"| catching up after production stopped | {figures.drain_s:.0f} s |",
        f"| whole run | {figures.duration_s / 60:.1f} min |",
        "",
        "| table | records (ids) | of them sent twice on purpose | raw rows | processed | "
        "quarantined | check |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for check in figures.checks:
        verdict = "; ".join(check.problems) or "every record once"
        lines.append(
            f"| {check.table} | {check.produced:,} | {check.duplicated:,} | {check.raw_rows:,} | "
            f"{check.processed:,} | {check.quarantined:,} | {verdict} |"
        )
    if figures.problems:
        lines += ["", *(f"- problem: {problem}" for problem in figures.problems)]
    return "\n".join(lines)


def write_figures(figures: ChaosFigures, docs: Path | None) -> str:
    """The rendered figures; written into ``docs`` between the markers when given."""
    section = render(figures)
    if docs is not None:
        text = docs.read_text()
        if BEGIN not in text or END not in text:
            raise ValueError(f"{docs} has no soak markers ({BEGIN} ... {END})")
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        docs.write_text(f"{head}{BEGIN}\n{section}\n{END}{tail}")
    return section
