"""Where the checkout's own files are: configs, the jar folders filled by `make setup`."""

from __future__ import annotations

from pathlib import Path


def checkout_root() -> Path:
    """The source checkout streamlake runs from (an editable install)."""
    return Path(__file__).resolve().parent.parent


def default_spark_jars_dir() -> Path:
    return checkout_root() / ".jars" / "spark"


def default_kafka_jars_dir() -> Path:
    return checkout_root() / ".jars" / "kafka"


def default_kcl_jars_dir() -> Path:
    return checkout_root() / ".jars" / "kcl"
