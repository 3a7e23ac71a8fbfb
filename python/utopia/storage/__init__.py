"""Storage: schema migrations, the write path, analytics queries and Dataset B (schema `utopia`).

- `migrations.run(conn, settings.storage)` brings the schema up to date (`utopia migrate`).
- `write_batch(conn, batch, progress, flavour=...)` writes one core batch in one transaction.
- `queries` holds every analytics query; results are msgspec Structs from `models`.
- `locations` reads and upserts Dataset B and notifies ingest workers (`NOTIFY utopia_locations`).
- `maintenance.maintain(...)` keeps partitions, retention and rollups in shape (plain flavour).
"""

from utopia.storage.locations import NOTIFY_CHANNEL, LocationsFileError, fetch_locations, load_locations, read_locations
from utopia.storage.maintenance import fold_rollups, maintain, refresh_rollups
from utopia.storage.migrations import MigrationError, current_flavour
from utopia.storage.models import Flavour, Progress, WriteResult
from utopia.storage.writer import recent_ids, write_batch

__all__ = [
    "NOTIFY_CHANNEL",
    "Flavour",
    "LocationsFileError",
    "MigrationError",
    "Progress",
    "WriteResult",
    "current_flavour",
    "fetch_locations",
    "fold_rollups",
    "load_locations",
    "maintain",
    "read_locations",
    "recent_ids",
    "refresh_rollups",
    "write_batch",
]
