"""Streaming jobs (ingest, process) and their runtime."""

from __future__ import annotations
