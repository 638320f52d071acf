"""Schema drift under the evolve policy: the columns earlier batches added, and the new
fields of this batch typed from their values. (The strict and rescue policies act while
parsing, see ``parse``.)"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streaming.transforms.spec import TableSpec
from streamlake.lake.tables import PROCESSED_SYSTEM

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructField, StructType

log = logging.getLogger(__name__)


def known_fields(spec: TableSpec, processed: StructType | None) -> list[StructField]:
    """The declared fields plus those an earlier batch added under the evolve policy;
    ``processed`` is the processed table's schema, None before it exists."""
    if spec.table.drift != "evolve" or processed is None:
        return list(spec.fields)
    declared = {f.name for f in spec.fields}
    added = [
        f for f in processed.fields if f.name not in declared and f.name not in PROCESSED_SYSTEM
    ]
    return [*spec.fields, *added]


def new_fields(
    good: DataFrame, spec: TableSpec, known: list[StructField], any_unknown: bool = True
) -> list[StructField]:
    """Unknown fields of this batch, typed from their values, to add as columns (evolve
    policy only; ``any_unknown`` False when the batch is known to have none)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField

    if spec.table.drift != "evolve" or not any_unknown:
        return []
    names = sorted(
        {row[0] for row in good.select(F.explode("_unknown")).distinct().collect()}
        - {f.name for f in known}
    )
    added = []
    for name in names:
        value = F.try_variant_get(F.col("_v"), f"$.{name}", "variant")
        inferred = good.select(F.schema_of_variant_agg(value)).first()
        type_name = str(inferred[0]) if inferred and inferred[0] else "STRING"
        if not type_name.isalpha() and not type_name.startswith("DECIMAL"):
            type_name = "STRING"  # objects and arrays are kept as JSON text
        if type_name in ("VARIANT", "NULL"):
            type_name = "STRING"
        added.append(StructField(name, type_from_name(type_name) or StringType(), True))
    if added:
        log.warning(
            "evolving processed.%s with new columns %s",
            spec.name,
            ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in added),
        )
    return added


def needs_schema_merge(rows: DataFrame, processed: DataFrame | None, spec: TableSpec) -> bool:
    """Whether appending ``rows`` to processed must merge schemas: evolve tables take new
    fields; any table takes system columns newer than it. Anything else unexpected is left
    to fail the write rather than widen a strict table."""
    if spec.table.drift == "evolve":
        return True
    if processed is None:
        return False
    added = set(rows.columns) - set(processed.columns)
    return bool(added) and added <= set(PROCESSED_SYSTEM)


def type_from_name(name: str) -> Any:
    from pyspark.sql.types import _parse_datatype_string

    try:
        return _parse_datatype_string(name.lower())
    except Exception:
        return None


def json_or_typed(field: StructField) -> Column:
    """An evolved field's value from the VARIANT: typed, or JSON text for a string column."""
    from pyspark.sql import functions as F

    type_name = field.dataType.simpleString()
    value = F.try_variant_get(F.col("_v"), f"$.{field.name}", "variant")
    if type_name == "string":
        as_string = F.try_variant_get(F.col("_v"), f"$.{field.name}", "string")
        return F.coalesce(as_string, F.to_json(value))
    return F.try_variant_get(F.col("_v"), f"$.{field.name}", type_name)
