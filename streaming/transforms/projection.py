"""A batch transform's columns built once and applied to every batch.

Building a column is a call into the JVM; a wide transform like parsing makes thousands of
them. Built once per job run (the columns are JVM objects of that run's session) and
applied to each batch, it costs a few calls per batch instead."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


@dataclass(frozen=True)
class Projection:
    """One select: the frame's columns but those named in ``replaces``, then ``columns``
    (each aliased; a column replacing one of the same name moves to the end)."""

    columns: tuple[Column, ...]
    replaces: frozenset[str]

    @classmethod
    def adding(cls, named: dict[str, Column], drops: Iterable[str] = ()) -> Projection:
        return cls(
            tuple(column.alias(name) for name, column in named.items()),
            frozenset([*named, *drops]),
        )

    def apply(self, frame: DataFrame) -> DataFrame:
        kept = [name for name in frame.columns if name not in self.replaces]
        return frame.select(*kept, *self.columns)


def apply_all(frame: DataFrame, projections: Iterable[Projection]) -> DataFrame:
    for projection in projections:
        frame = projection.apply(frame)
    return frame
