"""The `streamlake` command line. Only this package imports jobs."""

from __future__ import annotations
