"""One module or package per external system: sources, sinks and clients.

Connectors import nothing from ``streaming`` or ``batch``.
"""

from __future__ import annotations
