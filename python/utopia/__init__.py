"""Utopia core: real-time ingest, dedup and analytics of camera detection events."""

from utopia._core import COPY_COLUMNS, EVENT_FIELDS, Batch, Core, CoreArgumentError, Reject, UnknownBatchError

__all__ = [
    "COPY_COLUMNS",
    "EVENT_FIELDS",
    "Batch",
    "Core",
    "CoreArgumentError",
    "Reject",
    "UnknownBatchError",
]
__version__ = "0.1.0"
