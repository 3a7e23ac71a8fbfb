"""Sources: file formats with bad rows reported by position, the simulated town, stdin."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from pathlib import Path

import msgspec
import pytest

from utopia_edge.events import Event
from utopia_edge.sources import Chunk
from utopia_edge.sources.files import FileSource, FileSourceError
from utopia_edge.sources.simulate import SimulatedSource
from utopia_edge.sources.stdin import StdinSource

GOOD = (
    '{"geographical_location_oid": 1, "video_camera_oid": 2, "detection_oid": %d, "item_name": "car",'
    ' "timestamp_detected": 5}'
)


async def collect(source: FileSource | StdinSource | SimulatedSource, start: int = 0) -> list[Chunk]:
    return [chunk async for chunk in source.chunks(start)]


def oids(chunks: list[Chunk]) -> list[int]:
    return [e.detection_oid for c in chunks for evs in c.groups.values() for e in evs if isinstance(e, Event)]


async def test_jsonl_bad_lines_are_reported_with_their_number(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        GOOD % 1,
        GOOD.replace('"video_camera_oid": 2', '"video_camera_oid": 0') % 2,
        "not json",
        "",
        GOOD % 3,
        '{"geographical_location_oid": 1, "video_camera_oid": 2, "item_name": "car", "timestamp_detected": 5}',
        GOOD.replace('"car"', '""') % 4,
        GOOD % 5 + "\n",
    ]
    path.write_text("\n".join(lines))
    source = FileSource(path)
    with caplog.at_level(logging.WARNING):
        chunks = await collect(source)
    assert oids(chunks) == [1, 3, 5]
    assert source.rejected == 4
    text = caplog.text
    assert "line 2: bad row skipped" in text
    assert "video_camera_oid" in text
    assert "line 3: bad row skipped" in text
    assert "line 6: bad row skipped" in text
    assert "detection_oid" in text
    assert "line 7: bad row skipped" in text
    assert "item_name" in text
    assert chunks[-1].cursor == 7  # records consumed (blank lines are not records)


async def test_csv_rows_with_extra_columns_and_bad_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "detection_oid,geographical_location_oid,video_camera_oid,item_name,timestamp_detected,extra\n"
        "1,3,4,person,1700000000000,x\n"
        "2,3,-4,person,1700000000000,x\n"
        "3,3,4,,1700000000000,x\n"
        "4,3,4,bus,12.5,x\n"
        "5,3,4,bus,1700000000000\n"
    )
    source = FileSource(path)
    with caplog.at_level(logging.WARNING):
        chunks = await collect(source)
    assert oids(chunks) == [1, 5]
    located = [e for e in chunks[0].groups[3] if isinstance(e, Event)]
    assert [(e.geographical_location_oid, e.item_name) for e in located] == [(3, "person"), (3, "bus")]
    assert source.rejected == 3
    for line in (3, 4, 5):
        assert f"line {line}: bad row skipped" in caplog.text


async def test_csv_without_the_contract_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("detection_oid,item_name\n1,car\n")
    with pytest.raises(FileSourceError, match="lacks column"):
        await collect(FileSource(path))


async def test_a_file_source_resumes_after_its_cursor(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(GOOD % i for i in range(1, 11)))
    assert oids(await collect(FileSource(path), start=6)) == [7, 8, 9, 10]


def test_unknown_extension_asks_for_the_format(tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text("")
    with pytest.raises(FileSourceError, match="--file-format"):
        FileSource(path)
    assert FileSource(path, fmt="jsonl").format == "jsonl"


async def test_parquet_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "geographical_location_oid": [1, 2, 3],
            "video_camera_oid": [1, 2, None],
            "detection_oid": [10, 11, 12],
            "item_name": ["car", "dog", "bus"],
            "timestamp_detected": [1, 2, 3],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    source = FileSource(path)
    assert oids(await collect(source)) == [10, 11]
    assert source.rejected == 1


def _valid_for(raw: dict[str, object], location: int) -> bool:
    """The core's rule: the event validates and its location is the subject's."""
    try:
        event = msgspec.convert(raw, Event)
    except msgspec.ValidationError:
        return False
    return event.geographical_location_oid == location


async def test_simulated_town_mix_duplicates_and_bad_events() -> None:
    source = SimulatedSource(None, count=20_000, duplicates=0.1, bad=0.05, seed=7, locations=10)
    chunks = await collect(source)
    assert sum(c.events for c in chunks) == 20_000
    valid: list[Event] = []
    bad = 0
    for chunk in chunks:
        for location, evs in chunk.groups.items():
            for e in evs:
                if isinstance(e, Event):
                    assert e.geographical_location_oid == location
                    valid.append(msgspec.convert(msgspec.to_builtins(e), Event))  # passes validation
                else:
                    bad += 1
                    assert isinstance(e, dict)
                    assert not _valid_for(e, location)
    assert 0.03 < bad / 20_000 < 0.07
    unique = {e.detection_oid for e in valid}
    assert 0.07 < (len(valid) - len(unique)) / 20_000 < 0.13
    items = collections.Counter(e.item_name for e in valid).most_common(2)
    assert [name for name, _ in items] == ["person", "car"]
    per_location = collections.Counter(e.geographical_location_oid for e in valid)
    assert per_location[1] > per_location[10]  # downtown is busier


async def test_simulated_rate_is_paced() -> None:
    source = SimulatedSource(2000, count=600)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert sum(c.events for c in await collect(source)) == 600
    assert 0.2 < loop.time() - start < 1.5


async def test_stdin_lines_until_eof() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader:
        source = StdinSource(reader)
        task = asyncio.create_task(collect(source))
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(((GOOD % 1) + "\nbroken\n" + (GOOD % 2)).encode())
        chunks = await asyncio.wait_for(task, timeout=10)
    assert oids(chunks) == [1, 2]
    assert source.rejected == 1
