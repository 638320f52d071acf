"""Lake tables outside Spark: the same Delta tables opened with delta-rs (deltalake)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from streamlake.config.settings import Settings

if TYPE_CHECKING:
    from deltalake import DeltaTable


def delta_rs_location(path: str, settings: Settings) -> tuple[str, dict[str, str]]:
    """The URI and storage options delta-rs needs for a path Spark writes (s3a:// or disk)."""
    if not path.startswith(("s3a://", "s3://")):
        return str(Path(path).resolve()), {}
    uri = "s3://" + path.split("://", 1)[1]
    aws = settings.aws
    options = {"AWS_REGION": aws.region}
    if aws.endpoint_url:
        options["AWS_ENDPOINT_URL"] = aws.endpoint_url
        options["AWS_ALLOW_HTTP"] = str(aws.endpoint_url.startswith("http://")).lower()
    if aws.access_key_id and aws.secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = aws.access_key_id.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = aws.secret_access_key.get_secret_value()
    return uri, options


def open_delta_table(path: str, settings: Settings) -> DeltaTable:
    from deltalake import DeltaTable

    uri, options = delta_rs_location(path, settings)
    return DeltaTable(uri, storage_options=options or None)
