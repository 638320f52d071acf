"""`streamlake produce`: realistic synthetic events for the demo pipeline's sources."""

from __future__ import annotations
