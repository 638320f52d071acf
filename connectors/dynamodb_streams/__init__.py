"""DynamoDB tables and their change streams."""

from __future__ import annotations
