"""`utopia top-items`: the classic report as table, CSV and JSON."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from datetime import timedelta

import asyncpg
import pytest

from tests.storage import data
from tests.storage.data import LOCATIONS, T0
from utopia import cli
from utopia.storage import load_locations, write_batch

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def loaded(db_url: str) -> list[data.Event]:
    events = data.make_events(random.Random(3), 2000, span=timedelta(hours=3), first_id=1)

    async def load() -> None:
        conn = await asyncpg.connect(db_url)
        try:
            await load_locations(conn, list(LOCATIONS.items()))
            await write_batch(conn, data.process(data.new_core(), events), None, flavour="plain")
        finally:
            await conn.close()

    asyncio.run(load())
    return events


def _args(db_url: str, *extra: str) -> list[str]:
    start, end = T0 + timedelta(minutes=7, seconds=30), T0 + timedelta(hours=2, seconds=1)
    return [
        "top-items",
        "--x",
        "2",
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--database-url",
        db_url,
        *extra,
    ]


def test_formats(db_url: str, loaded: list[data.Event], capsys: pytest.CaptureFixture[str]) -> None:
    start, end = T0 + timedelta(minutes=7, seconds=30), T0 + timedelta(hours=2, seconds=1)
    expected = data.top_items(loaded, 2, start, end)
    names = {oid: LOCATIONS.get(oid, f"(unknown location {oid})") for oid in (1, 2, 3, 4)}

    assert cli.main(_args(db_url, "--format", "json")) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["geographical_location_oid"], r["item_rank"], r["item_name"], r["count"]) for r in rows] == expected
    assert rows[0]["geographical_location"] == "Old Town"

    assert cli.main(_args(db_url, "--format", "csv")) == 0
    parsed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert parsed[0] == ["geographical_location", "item_rank", "item_name", "count"]
    assert parsed[1:] == [[names[loc], str(rank), item, str(n)] for loc, rank, item, n in expected]

    assert cli.main(_args(db_url)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["geographical_location", "item_rank", "item_name", "count"]
    assert len(table) == 1 + len(expected)
    assert table[1].startswith("Old Town")

    assert cli.main(_args(db_url, "--location", "2", "--format", "json")) == 0
    assert {r["geographical_location_oid"] for r in json.loads(capsys.readouterr().out)} == {2}


def test_bad_arguments(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["top-items", "--x", "0", "--database-url", db_url])
    assert "positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["top-items", "--x", "1", "--from", "yesterday", "--database-url", db_url])
    assert "ISO 8601" in capsys.readouterr().err
    assert (
        cli.main(["top-items", "--x", "1", "--from", "2024-01-02", "--to", "2024-01-01", "--database-url", db_url]) == 1
    )
