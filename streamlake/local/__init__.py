"""The embedded stack: a local Kafka broker and a local AWS API server, on 127.0.0.1."""

from __future__ import annotations
