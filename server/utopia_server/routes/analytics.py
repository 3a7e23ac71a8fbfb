"""Analytics reads: locations, top items, time series, cameras, stored detections, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from litestar import get
from litestar.params import Parameter, QueryParameter

from utopia.storage import queries
from utopia.storage.models import Bucket, BucketCount, CameraStatus, DetectionPage, LocationCount, TopItem
from utopia_server.deps import Hub, Pool
from utopia_server.models import Stats
from utopia_server.params import bad, time_range

__all__ = ["ROUTES"]

From = Annotated[str | None, QueryParameter(name="from", description="ISO 8601, inclusive (default: to - 24 h)")]
To = Annotated[str | None, QueryParameter(name="to", description="ISO 8601, exclusive (default: now)")]
Location = Annotated[int | None, Parameter(ge=1, le=2**63 - 1, description="only this geographical_location_oid")]
_MAX_BUCKETS = {"minute": timedelta(days=7), "hour": timedelta(days=366), "day": timedelta(days=3660)}


@get("/locations", summary="Dataset B, each location with its detections in [from, to)")
async def get_locations(pool: Pool, start: From = None, end: To = None) -> list[LocationCount]:
    frm, to = time_range(start, end)
    async with pool.acquire() as conn:
        return await queries.locations(conn, frm, to)


@get("/top-items", summary="Top X items per location, ranked by count, ties by item_name")
async def get_top_items(
    pool: Pool,
    x: Annotated[int, Parameter(ge=1, le=1000, description="items per location")],
    start: From = None,
    end: To = None,
    location: Location = None,
) -> list[TopItem]:
    frm, to = time_range(start, end)
    async with pool.acquire() as conn:
        return await queries.top_items(conn, x, frm, to, location=location)


@get("/timeseries", summary="Counts per (bucket, location, item); buckets are UTC")
async def get_timeseries(
    *,
    pool: Pool,
    bucket: Annotated[Bucket, Parameter(description="minute (range up to 7 days), hour or day")] = "hour",
    start: From = None,
    end: To = None,
    location: Location = None,
    item: Annotated[str | None, Parameter(min_length=1, max_length=5000, description="only this item_name")] = None,
) -> list[BucketCount]:
    frm, to = time_range(start, end, limit=_MAX_BUCKETS[bucket])
    async with pool.acquire() as conn:
        return await queries.timeseries(conn, bucket, frm, to, location=location, item=item)


@get("/cameras", summary="Per camera: last event, events in the last minutes, silent flag")
async def get_cameras(
    pool: Pool,
    recent_minutes: Annotated[int, Parameter(ge=1, le=1440, description="window of recent_count")] = 5,
    silent_after_s: Annotated[int, Parameter(ge=1, le=86400, description="silent when quiet this long")] = 60,
) -> list[CameraStatus]:
    async with pool.acquire() as conn:
        return await queries.cameras(
            conn,
            datetime.now(UTC),
            recent=timedelta(minutes=recent_minutes),
            silent_after=timedelta(seconds=silent_after_s),
        )


@get("/detections", summary="Stored detections in [from, to), oldest first; pass next_cursor as cursor")
async def get_detections(
    *,
    pool: Pool,
    start: From = None,
    end: To = None,
    location: Location = None,
    limit: Annotated[int, Parameter(ge=1, le=1000, description="rows per page")] = 100,
    cursor: Annotated[str | None, Parameter(max_length=200, description="next_cursor of the previous page")] = None,
) -> DetectionPage:
    frm, to = time_range(start, end)
    async with pool.acquire() as conn:
        try:
            return await queries.detections(conn, frm, to, limit=limit, cursor=cursor, location=location)
        except ValueError as exc:
            raise bad("cursor", str(exc)) from None


@get("/stats", summary="Ingest rates, duplicates, rejects, unmatched, lag (live) and stored totals")
async def get_stats(pool: Pool, hub: Hub) -> Stats:
    async with pool.acquire() as conn:
        stored = await queries.ingest_stats(conn, datetime.now(UTC))
    return Stats(live=hub.latest, stored=stored)


ROUTES = [get_locations, get_top_items, get_timeseries, get_cameras, get_detections, get_stats]
