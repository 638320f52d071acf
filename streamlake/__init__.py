"""streamlake: streaming lakehouse ingestion on Spark and Delta."""

from __future__ import annotations

__version__ = "0.1.0"
