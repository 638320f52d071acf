"""The catalog job's pure parts: Delta types as Glue types, names, locations, the compare
that keeps a second run from writing, and the Spectrum statements."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from batch.catalog import escape_path_name, glue_columns, manifest_blocker
from connectors.glue_catalog import PartitionChanges, differs, glue_location, hive_type
from streamlake.config.pipeline import glue_name
from tests.conftest import CONFIGS

ORDERS_ITEMS = {
    "type": "array",
    "elementType": {
        "type": "struct",
        "fields": [
            {"name": "sku", "type": "string", "nullable": True, "metadata": {}},
            {"name": "qty", "type": "integer", "nullable": True, "metadata": {}},
            {"name": "price", "type": "decimal(12,2)", "nullable": True, "metadata": {}},
        ],
    },
    "containsNull": True,
}


@pytest.mark.parametrize(
    ("delta", "hive"),
    [
        ("string", "string"),
        ("long", "bigint"),
        ("integer", "int"),
        ("short", "smallint"),
        ("byte", "tinyint"),
        ("double", "double"),
        ("float", "float"),
        ("decimal(12,2)", "decimal(12,2)"),
        ("boolean", "boolean"),
        ("timestamp", "timestamp"),
        ("timestamp_ntz", "timestamp"),
        ("date", "date"),
        ("binary", "binary"),
        (ORDERS_ITEMS, "array<struct<sku:string,qty:int,price:decimal(12,2)>>"),
        (
            {"type": "map", "keyType": "string", "valueType": "long", "valueContainsNull": True},
            "map<string,bigint>",
        ),
    ],
)
def test_delta_types_become_hive_types(delta: object, hive: str) -> None:
    assert hive_type(delta) == hive


def test_variant_columns_are_left_out_and_named() -> None:
    fields = [
        {"name": "Order_ID", "type": "string"},
        {"name": "doc", "type": "variant"},
        {"name": "nested", "type": {"type": "array", "elementType": "variant"}},
    ]
    columns, left_out = glue_columns(fields)
    assert columns == [{"Name": "order_id", "Type": "string"}]
    assert left_out == ("doc (variant)", "nested (array)")


def test_names_and_locations_as_glue_takes_them() -> None:
    assert glue_name("Shop-EU.v2") == "shop_eu_v2"
    assert glue_location("s3a://lake/processed/orders") == "s3://lake/processed/orders"
    assert glue_location("s3://lake/raw/orders") == "s3://lake/raw/orders"
    assert glue_location("relative/lake/raw/x").startswith("/")
    assert escape_path_name("a/b:c=d e") == "a%2Fb%3Ac%3Dd e"


def test_compare_ignores_what_glue_adds() -> None:
    wanted = {"Name": "t", "PartitionKeys": [], "StorageDescriptor": {"Columns": [{"Name": "a"}]}}
    found = {
        "Name": "t",
        "CreateTime": "x",
        "StorageDescriptor": {"Columns": [{"Name": "a", "Comment": ""}], "Compressed": False},
    }
    assert not differs(wanted, found)
    assert differs(wanted, found | {"PartitionKeys": [{"Name": "d"}]})
    assert differs(wanted, {"Name": "t", "StorageDescriptor": {"Columns": []}})


def test_manifest_is_refused_where_delta_refuses_it() -> None:
    assert manifest_blocker({}) is None
    assert manifest_blocker({"delta.enableDeletionVectors": "true"}) is not None
    assert manifest_blocker({"delta.columnMapping.mode": "name"}) is not None


def test_partition_changes_read_as_a_detail() -> None:
    assert PartitionChanges(3, 0, 1).describe() == "+3 partitions, -1 partition"
    assert not PartitionChanges()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    return subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_spectrum_sql_mounts_every_layer_database() -> None:
    result = run_cli("catalog", "spectrum-sql")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("-- Spectrum reads the <table>_manifest tables")
    assert lines[1] == (
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS shop_raw FROM DATA CATALOG DATABASE 'shop_raw' "
        "IAM_ROLE 'arn:aws:iam::<account-id>:role/<role-name>' REGION 'us-east-1';"
    )
    assert [line.split()[6] for line in lines[1:]] == [
        "shop_raw",
        "shop_processed",
        "shop_quarantine",
        "shop_curated",
    ]


def test_spectrum_sql_for_one_layer_with_a_role() -> None:
    role = "arn:aws:iam::123456789012:role/spectrum"
    result = run_cli("catalog", "spectrum-sql", "--layer", "curated", "--iam-role", role)
    assert result.returncode == 0, result.stderr
    statements = result.stdout.strip().splitlines()[1:]
    assert statements == [
        f"CREATE EXTERNAL SCHEMA IF NOT EXISTS shop_curated FROM DATA CATALOG DATABASE "
        f"'shop_curated' IAM_ROLE '{role}' REGION 'us-east-1';"
    ]


@pytest.mark.parametrize(
    "args", [("--layer", "gold"), ("--iam-role", "spectrum")], ids=["layer", "role"]
)
def test_spectrum_sql_bad_option_is_bad_usage(args: tuple[str, str]) -> None:
    result = run_cli("catalog", "spectrum-sql", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert json.dumps(args[1]).strip('"') in result.stderr
