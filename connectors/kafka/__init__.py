"""Kafka and Amazon MSK."""

from __future__ import annotations
