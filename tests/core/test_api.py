"""The Python face of the core: named errors for misuse, GIL released, columnar outputs."""

from __future__ import annotations

import json
import threading
import time

import pytest

import utopia
from tests.core.events import JSON, MSGPACK, encode, event
from utopia import copy_format
from utopia.reference import ReferenceCore

NOW = 1_764_160_000_000


def payload(*ids: int, location: int = 1, content_type: str = JSON) -> bytes:
    return encode([event(location, 9, i, "car", NOW) for i in ids], content_type)


def test_misuse_raises_named_value_errors() -> None:
    core = utopia.Core()
    with pytest.raises(utopia.CoreArgumentError, match="subjects/content_types"):
        core.process([b"{}"], [], [None])
    with pytest.raises(utopia.CoreArgumentError, match="names"):
        core.set_locations([1, 2], ["only one"])
    with pytest.raises(utopia.CoreArgumentError, match="seen_at_ms"):
        core.warm([1, 2], [NOW])
    with pytest.raises(utopia.CoreArgumentError, match="horizon_ms"):
        utopia.Core(horizon_ms=0)
    with pytest.raises(utopia.UnknownBatchError, match="not open"):
        core.commit(12345)
    batch = core.process([payload(1)], ["utopia.detections.1"], [None])
    core.commit(batch.token)
    with pytest.raises(utopia.UnknownBatchError):
        core.abort(batch.token)
    assert issubclass(utopia.UnknownBatchError, ValueError)


def test_outputs_are_columnar_and_copy_decodes() -> None:
    core = utopia.Core()
    core.set_locations([1], ["Old Town"])
    batch = core.process(
        [payload(1, 2, 1), payload(3, location=2, content_type=MSGPACK)],
        ["utopia.detections.1", "utopia.detections.2"],
        [JSON, MSGPACK],
        now_ms=NOW,
        live=True,
    )
    assert (batch.received, batch.accepted, batch.duplicates, batch.unmatched) == (4, 3, 1, 1)
    rows = copy_format.decode(batch.copy_data)
    assert [r.detection_oid for r in rows] == batch.ids() == [1, 2, 3]
    assert [r.geographical_location for r in rows] == ["Old Town", "Old Town", None]
    minute = NOW - NOW % 60_000
    assert batch.counts() == ([minute, minute], [1, 2], [9, 9], ["car", "car"], [2, 1])
    live = dict(batch.live())
    assert [e["detection_oid"] for e in json.loads(live[1])] == [1, 2]
    assert core.stats()[:4] == (3, core.stats()[1], 3, 1)


def test_reject_carries_reason_subject_and_event_bytes() -> None:
    core = utopia.Core()
    bad = encode([event(1, 9, 5, "", NOW)], JSON, single=True)
    batch = core.process([bad], ["utopia.detections.1"], [None])
    (reject,) = batch.rejects
    assert reject.reason == "item_name: must be 1 to 5000 characters, got 0"
    assert (reject.field, reject.code, reject.subject, reject.payload) == (
        "item_name",
        "range",
        "utopia.detections.1",
        bad,
    )


def test_process_releases_the_gil_for_the_batch() -> None:
    core = utopia.Core()
    payloads = [payload(*range(i * 500 + 1, i * 500 + 501)) for i in range(400)]
    subjects = ["utopia.detections.1"] * len(payloads)
    ticks = 0
    done = threading.Event()

    def count_ticks() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0)

    ticker = threading.Thread(target=count_ticks)
    ticker.start()
    try:
        content_types: list[str | None] = [None] * len(payloads)
        before = ticks
        batch = core.process(payloads, subjects, content_types)
        during = ticks - before
    finally:
        done.set()
        ticker.join()
    assert batch.accepted == 200_000
    # With the GIL held for the whole call the other thread could barely run meanwhile.
    assert during > 100, f"only {during} ticks during the call"


def test_locations_can_be_swapped_from_another_thread_while_batches_run() -> None:
    core = utopia.Core()
    stop = threading.Event()

    def swap() -> None:
        flip = False
        while not stop.is_set():
            core.set_locations([1], ["A" if flip else "B"])
            flip = not flip

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for start in range(0, 20_000, 500):
            batch = core.process([payload(*range(start + 1, start + 501))], ["utopia.detections.1"], [None])
            names = {r.geographical_location for r in copy_format.decode(batch.copy_data)}
            # One table version per batch: never a mix of two.
            assert len(names) == 1
            core.commit(batch.token)
    finally:
        stop.set()
        swapper.join()


def test_abort_keeps_what_warm_up_knows_from_another_generation() -> None:
    # Found by the property test: a stored id (warm) must stay seen when a batch that also
    # accepted it is aborted; the reference states this per generation, like the core.
    for core in (utopia.Core(horizon_ms=1000), ReferenceCore(horizon_ms=1000)):
        open_batch = core.process([payload(2)], ["utopia.detections.1"], [None], now_ms=NOW)
        core.warm([2], [NOW - 500], now_ms=NOW)
        core.abort(open_batch.token)
        again = core.process([payload(2)], ["utopia.detections.1"], [None], now_ms=NOW)
        assert (again.accepted, again.duplicates) == (0, 1), type(core).__name__
