"""Dataset B: `utopia locations load FILE` upserts all rows or none, and notifies ingest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from utopia import cli
from utopia.storage import NOTIFY_CHANNEL, LocationsFileError, fetch_locations, load_locations, read_locations

pytestmark = pytest.mark.timeout(60)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_csv_and_json_lines(tmp_path: Path) -> None:
    csv_file = _write(
        tmp_path,
        "b.csv",
        'geographical_location_oid,geographical_location,extra\n1,Old Town,x\n2,"Harbour, north",y\n\n3,Straße,z\n',
    )
    assert read_locations(csv_file) == [(1, "Old Town"), (2, "Harbour, north"), (3, "Straße")]
    lines = [{"geographical_location_oid": 7, "geographical_location": "Station", "more": 1}, {}]
    jsonl = _write(tmp_path, "b.jsonl", json.dumps(lines[0]) + "\n\n")
    assert read_locations(jsonl) == [(7, "Station")]


def test_bad_csv_lists_every_bad_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.csv",
        "geographical_location_oid,geographical_location\n"
        "1,Old Town\n"  # line 2: fine
        "x,Harbour\n"  # line 3
        "0,Zero\n"  # line 4
        "5,\n"  # line 5: empty name
        f"6,{'a' * 501}\n"  # line 6
        "1,Other Name\n"  # line 7: conflicting duplicate
        "1,Old Town\n"  # line 8: identical duplicate is fine
        "9,a,b\n",  # line 9: too many fields
    )
    with pytest.raises(LocationsFileError) as info:
        read_locations(path)
    assert [line for line, _ in info.value.errors] == [3, 4, 5, 6, 7, 9]
    message = str(info.value)
    assert "line 3: geographical_location_oid is not an integer: 'x'" in message
    assert "line 7: geographical_location_oid 1 already given a different name on line 2" in message
    assert "nothing loaded" in message


def test_bad_json_lines_and_headers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.jsonl",
        '{"geographical_location_oid": 1, "geographical_location": "A"}\n'
        "{not json\n"
        '["a"]\n'
        '{"geographical_location_oid": "2", "geographical_location": "B"}\n'
        '{"geographical_location": "C"}\n'
        '{"geographical_location_oid": 9223372036854775808, "geographical_location": "D"}\n',
    )
    with pytest.raises(LocationsFileError) as info:
        read_locations(path)
    assert [line for line, _ in info.value.errors] == [2, 3, 4, 5, 6]
    header = _write(tmp_path, "h.csv", "oid,name\n1,A\n")
    with pytest.raises(LocationsFileError, match="header lacks column"):
        read_locations(header)
    with pytest.raises(LocationsFileError, match="unknown format"):
        read_locations(_write(tmp_path, "b.txt", ""))
    with pytest.raises(LocationsFileError, match="no locations"):
        read_locations(_write(tmp_path, "empty.csv", "geographical_location_oid,geographical_location\n"))


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"geographical_location_oid": [1, 2], "geographical_location": ["A", ""]}), path)
    with pytest.raises(LocationsFileError, match="row 2"):
        read_locations(path)


async def test_upsert_notifies_after_commit(conn: Any, db_url: str) -> None:
    listener = await asyncpg.connect(db_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        report = await load_locations(conn, [(1, "Old Town"), (2, "Harbour")])
        assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
        assert json.loads(await asyncio.wait_for(heard.get(), 5)) == {"inserted": 2, "updated": 0}
        report = await load_locations(conn, [(1, "Old Town"), (2, "Harbour North"), (3, "Station")])
        assert (report.inserted, report.updated, report.unchanged) == (1, 1, 1)
        assert json.loads(await asyncio.wait_for(heard.get(), 5)) == {"inserted": 1, "updated": 1}
        report = await load_locations(conn, [(1, "Old Town")])
        assert report.unchanged == 1
        assert await fetch_locations(conn) == ([1, 2, 3], ["Old Town", "Harbour North", "Station"])
        await asyncio.sleep(0.1)
        assert heard.empty()  # nothing changed: no reload asked
    finally:
        await listener.close()


def test_cli_load_all_or_nothing(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good.csv", "geographical_location_oid,geographical_location\n1,Old Town\n2,Harbour\n")
    assert cli.main(["locations", "load", str(good), "--database-url", db_url]) == 0
    assert "2 locations: 2 new" in capsys.readouterr().out
    bad = _write(tmp_path, "bad.csv", "geographical_location_oid,geographical_location\n1,Renamed\n3,Station\n-4,X\n")
    assert cli.main(["locations", "load", str(bad), "--database-url", db_url]) == 1
    assert "line 4: geographical_location_oid must be between" in capsys.readouterr().err

    async def names() -> dict[int, str]:
        conn = await asyncpg.connect(db_url)
        try:
            oids, labels = await fetch_locations(conn)
        finally:
            await conn.close()
        return dict(zip(oids, labels, strict=True))

    assert asyncio.run(names()) == {1: "Old Town", 2: "Harbour"}
