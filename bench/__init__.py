"""The benchmark harness: `make bench` (python -m bench)."""

from __future__ import annotations
