"""The jdbc source kind without a database: bookmarks, the config's refusals, the table a
declared schema makes, and connections' credentials."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.jdbc.bookmark import Bookmark
from connectors.jdbc.database import pg_type, table_ddl
from connectors.jdbc.endpoint import JdbcEndpoint
from connectors.jdbc.reader import translate
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import JdbcConnection, Settings
from streamlake.errors import JdbcError
from tests.support import PRODUCTS_DDL, jdbc_pipeline


def bookmark(kind: str, overlap: Any = None) -> Bookmark:
    return Bookmark("b", kind, ("id",), overlap)  # type: ignore[arg-type]


def test_positions_order_as_the_bookmark_values_and_the_overlap_goes_back() -> None:
    stamp = bookmark("timestamp", "5 minutes")
    newest = "2026-11-28T10:00:00.000123|p-9"
    assert stamp.value_of(newest) == datetime(2026, 11, 28, 10, 0, 0, 123, tzinfo=UTC)
    lower = stamp.lower_bound(newest)
    assert lower == datetime(2026, 11, 28, 9, 55, 0, 123, tzinfo=UTC)
    assert stamp.lower_text(lower) == "2026-11-28T09:55:00.000123"
    assert stamp.lower_bound(None) is None

    ids = bookmark("integer", 100)
    assert ids.lower_bound(ids.lower_text(950) + "|950") == 850
    assert ids.lower_bound(ids.lower_text(50) + "|50") == -50
    assert ids.lower_text(0) == "09223372036854775808"
    # Fixed width, offset: text order is number order, negative numbers included.
    ordered = [-(2**63), -100, -5, 0, 99, 100, 2**63 - 1]
    assert sorted(ids.lower_text(n) for n in ordered) == [ids.lower_text(n) for n in ordered]
    assert ids.value_of(ids.lower_text(-5) + "|x") == -5

    days = bookmark("date", "1 hour")
    assert days.lower_bound("2026-11-28|x") == date(2026, 11, 27)
    assert bookmark("date").lower_bound("2026-11-28|x") == date(2026, 11, 28)


def test_a_bookmark_is_read_from_the_table_declaration() -> None:
    pipeline = jdbc_pipeline("public.products", overlap="2 minutes")
    source = pipeline.sources["products"]
    found = Bookmark.of(source, pipeline.tables["products"])  # type: ignore[arg-type]
    assert (found.column, found.kind, found.key, found.overlap) == (
        "updated_at",
        "timestamp",
        ("product_id",),
        "2 minutes",
    )


def pipeline_with(**changes: Any) -> dict[str, Any]:
    spec = jdbc_pipeline("public.products").model_dump(mode="json", exclude_none=True)
    for path, value in changes.items():
        node = spec
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"jobs__pull-products__kind": "ingest"},
            "comes from a jdbc source, which a pull job reads",
        ),
        ({"sources__products__bookmark": "changed_at"}, "'changed_at' (key or bookmark"),
        ({"sources__products__key": ["sku"]}, "'sku' (key or bookmark"),
        ({"sources__products__bookmark": "name"}, "a bookmark is a timestamp, a date or an"),
        ({"sources__products__overlap": 100}, "so the overlap is an interval"),
        ({"sources__products__bookmark": "stock", "sources__products__overlap": "1 hour"},
         "so the overlap is a count of ids"),
        ({"sources__products__table": "products; drop table x"}, "String should match pattern"),
    ],
)  # fmt: skip
def test_the_config_refuses_what_a_pull_cannot_do(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        Pipeline.model_validate(pipeline_with(**changes))


def test_a_pull_job_reads_only_a_jdbc_table() -> None:
    spec = pipeline_with()
    spec["sources"]["clicks"] = {"kind": "kafka", "topic": "clicks"}
    spec["tables"]["clicks"] = {"source": "clicks", "schema_ddl": "id STRING"}
    spec["jobs"]["pull-clicks"] = {"kind": "pull", "table": "clicks"}
    with pytest.raises(ValidationError, match="a pull job reads a table of a jdbc source"):
        Pipeline.model_validate(spec)


def test_a_connection_needs_credentials_from_one_place() -> None:
    with pytest.raises(ValidationError, match="needs secret"):
        JdbcConnection(url="jdbc:postgresql://db:5432/shop")
    with pytest.raises(ValidationError, match="not both"):
        JdbcConnection(secret="s", username="u", password="p")  # type: ignore[arg-type]
    local = Settings.model_validate(
        {
            "local": {"enabled": True, "postgres_port": 25432},
            "jdbc": {"shop_db": {"database": "shop", "secret": "shop/db"}},
        }
    )
    assert local.jdbc["shop_db"].url == "jdbc:postgresql://127.0.0.1:25432/shop"
    assert list(local.local_jdbc_connections()) == ["shop_db"]


def test_the_local_table_follows_the_declared_columns() -> None:
    assert pg_type("DECIMAL(10, 2)") == "numeric(10,2)"
    assert pg_type("array<string>") == "jsonb"
    ddl = table_ddl("public.products", PRODUCTS_DDL, ["product_id"], "updated_at")
    assert '"product_id" text not null' in ddl
    assert '"updated_at" timestamp with time zone not null' in ddl
    assert 'primary key ("product_id")' in ddl
    assert 'on "public"."products" ("updated_at")' in ddl


ENDPOINT = JdbcEndpoint("shop_db", "jdbc:postgresql://127.0.0.1:5/shop", "u", "secret-pw")


def test_driver_failures_become_one_line_errors_without_the_password() -> None:
    refused = translate(
        Exception(
            "An error occurred while calling o81.load.\n: org.postgresql.util.PSQLException: "
            "Connection to 127.0.0.1:5 refused. Check that the hostname and port are correct"
            "\n\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl"
        ),
        ENDPOINT,
        "public.products",
    )
    assert isinstance(refused, JdbcError) and refused.retryable
    text = str(refused)
    assert "\n" not in text
    assert text.startswith("jdbc connection shop_db (jdbc:postgresql://127.0.0.1:5/shop) table")
    denied = translate(
        Exception(
            ": org.postgresql.util.PSQLException: FATAL: "
            'password authentication failed for user "u"'
        ),
        ENDPOINT,
        "public.products",
    )
    assert isinstance(denied, JdbcError) and not denied.retryable
    in_url = JdbcEndpoint(
        "db", "jdbc:postgresql://h/shop?user=u&password=hunter2&ssl=true", "u", ""
    )
    shown = str(in_url.error("refused"))
    assert "hunter2" not in shown and "password=***&ssl=true" in shown
    assert 'FATAL: password authentication failed for user "u"' in str(denied)
