"""What one run of a consumer (a curated table) reads of each processed input: the version
current when the run started, and the version its last run took in."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from streamlake.config.settings import Settings
from streamlake.errors import first_line
from streamlake.lake import delta_rs
from streamlake.lake.spark_delta import MergeCounts, changes_between, read_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputWindow:
    """``processed.<name>`` at ``path``, read as of ``version``; ``since`` is the version
    the consumer's last run took in (None: it reads everything)."""

    name: str
    path: str
    version: int
    table_id: str
    since: int | None = None

    @property
    def unchanged(self) -> bool:
        return self.since is not None and self.since >= self.version

    def from_start(self) -> InputWindow:
        return replace(self, since=None)

    def rows(self, spark: SparkSession) -> DataFrame:
        """The whole input as of ``version``."""
        return read_version(spark, self.path, self.version)

    def changes(self, spark: SparkSession) -> DataFrame:
        """The change feed of the commits after ``since`` up to ``version``."""
        assert self.since is not None
        return changes_between(spark, self.path, self.since, self.version)

    def changed_values(self, settings: Settings, columns: list[str]) -> set[tuple[Any, ...]] | None:
        """The distinct values of ``columns`` among the rows changed since ``since``; None
        means everything may have changed (a first run, or the feed cannot say: it was off,
        or its files were vacuumed), so the consumer recomputes from the whole input."""
        if self.since is None:
            return None
        if self.unchanged:
            return set()
        try:
            return delta_rs.changed_values(self.path, settings, self.since, self.version, columns)
        except Exception as exc:
            self.warn_unreadable(exc)
            return None

    def warn_unreadable(self, exc: BaseException) -> None:
        """Say why the change feed could not be read (the caller reads everything)."""
        log.warning(
            "processed.%s: the changes after version %s cannot be read (%s); reading the "
            "whole table instead (is delta.enableChangeDataFeed on, and the retention longer "
            "than the time between runs?)",
            self.name,
            self.since,
            first_line(exc),
        )


@dataclass(frozen=True)
class Refresh:
    """What one run wrote to a curated table and its companions (counts per table), and
    whether it read its inputs whole rather than their changes."""

    counts: dict[str, MergeCounts]
    whole: bool
