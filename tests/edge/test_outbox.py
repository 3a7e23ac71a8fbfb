"""The outbox on its own: sealing, stable batch ids and bytes, bounds bookkeeping, cursors."""

from __future__ import annotations

from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from utopia_edge.contract import CONTENT_TYPE_JSON, CONTENT_TYPE_MSGPACK, EVENT_FIELDS
from utopia_edge.events import BodyCodec, Event, split_encode
from utopia_edge.outbox import Outbox


def events(n: int, *, location: int = 1, first: int = 1) -> list[Event]:
    return [
        Event(
            geographical_location_oid=location,
            video_camera_oid=7,
            detection_oid=first + i,
            item_name="person",
            timestamp_detected=1_700_000_000_000 + i,
        )
        for i in range(n)
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def group(codec: BodyCodec, evs: list[Event]) -> tuple[int, int, bytes]:
    return (evs[0].geographical_location_oid, len(evs), codec.encode(evs))


def test_event_fields_are_the_contract() -> None:
    assert Event.__struct_fields__ == EVENT_FIELDS


def test_batches_seal_at_size_and_carry_a_msgpack_array_of_maps(tmp_path: Path) -> None:
    codec = BodyCodec("msgpack")
    outbox = Outbox(tmp_path / "o.db", batch_size=100)
    assert outbox.append([group(codec, events(60))]) == 0
    assert outbox.append([group(codec, events(60, first=61))]) == 1  # 60 + 60 > 100: the first 60 sealed
    assert outbox.append([group(codec, events(40, first=121))]) == 1  # 60 + 40 = 100: sealed at size
    batches = outbox.peek(0, 10)
    assert [b.events for b in batches] == [60, 100]
    assert all(b.subject == "utopia.detections.1" and b.content_type == CONTENT_TYPE_MSGPACK for b in batches)
    decoded = msgspec.msgpack.decode(batches[1].payload)
    assert [e["detection_oid"] for e in decoded] == list(range(61, 161))
    assert tuple(decoded[0]) == EVENT_FIELDS
    assert outbox.backlog_events == 160
    outbox.close()


def test_linger_seals_old_open_events(tmp_path: Path) -> None:
    clock = FakeClock()
    codec = BodyCodec("json")
    outbox = Outbox(tmp_path / "o.db", fmt="json", linger_s=0.05, clock=clock)
    outbox.append([group(codec, events(3, location=4))])
    assert outbox.seal_due() == 0
    clock.now += 0.06
    assert outbox.seal_due() == 1
    (batch,) = outbox.peek(0, 10)
    assert batch.content_type == CONTENT_TYPE_JSON
    assert [e["detection_oid"] for e in msgspec.json.decode(batch.payload)] == [1, 2, 3]
    outbox.close()


def test_a_resent_batch_has_the_same_id_and_bytes_after_a_restart(tmp_path: Path) -> None:
    codec = BodyCodec("msgpack")
    outbox = Outbox(tmp_path / "o.db", batch_size=10)
    outbox.append([group(codec, events(10))])
    (before,) = outbox.peek(0, 10)
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", batch_size=10)
    (after,) = reopened.peek(0, 10)
    assert (after.batch_id, after.payload, after.seq) == (before.batch_id, before.payload, before.seq)
    reopened.close()


def test_batch_ids_are_never_reused_even_after_the_outbox_drained(tmp_path: Path) -> None:
    codec = BodyCodec("msgpack")
    outbox = Outbox(tmp_path / "o.db", batch_size=5)
    outbox.append([group(codec, events(5))])
    first = outbox.peek(0, 10)
    outbox.delete(first)
    assert outbox.backlog_events == 0
    outbox.close()
    outbox = Outbox(tmp_path / "o.db", batch_size=5)
    outbox.append([group(codec, events(5, first=6))])
    second = outbox.peek(0, 10)
    assert second[0].batch_id != first[0].batch_id
    assert second[0].seq == first[0].seq + 1
    outbox.close()
    other = Outbox(tmp_path / "other.db", batch_size=5)
    other.append([group(codec, events(5))])
    assert other.peek(0, 1)[0].batch_id != first[0].batch_id  # another outbox, another agent id
    other.close()


def test_open_events_survive_a_restart_and_are_sealed_in_their_own_format(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", fmt="json")
    outbox.append([group(BodyCodec("json"), events(3))], cursor=("file:x", 3))
    outbox.close()  # as if killed before the linger ran out
    reopened = Outbox(tmp_path / "o.db", fmt="msgpack")
    (batch,) = reopened.peek(0, 10)
    assert batch.content_type == CONTENT_TYPE_JSON
    assert len(msgspec.json.decode(batch.payload)) == 3
    assert reopened.cursor("file:x") == 3
    reopened.clear_cursor("file:x")
    assert reopened.cursor("file:x") is None
    reopened.close()


def test_backlog_counts_events_and_bytes_until_acknowledged(tmp_path: Path) -> None:
    codec = BodyCodec("msgpack")
    clock = FakeClock()
    outbox = Outbox(tmp_path / "o.db", batch_size=4, clock=clock)
    outbox.append([group(codec, events(4, location=1)), group(codec, events(2, location=2))])
    assert outbox.backlog_events == 6
    assert outbox.backlog_bytes > 0
    assert outbox.oldest_created() == clock.now
    sealed = outbox.peek(0, 10)
    outbox.delete(sealed)
    outbox.delete(sealed)  # deleting twice does not count twice
    assert outbox.backlog_events == 2
    outbox.seal_all()
    outbox.delete(outbox.peek(0, 10))
    assert (outbox.backlog_events, outbox.backlog_bytes, outbox.oldest_created()) == (0, 0, None)
    outbox.close()


def test_split_encode_respects_event_and_byte_limits() -> None:
    codec = BodyCodec("msgpack")
    evs = events(1000)
    bodies = split_encode(codec, evs, 300, 4096)
    assert sum(n for n, _ in bodies) == 1000
    assert all(n <= 300 and len(body) <= 4096 for n, body in bodies)
    merged = codec.merge([body for _, body in bodies], 1000)
    assert [e["detection_oid"] for e in msgspec.msgpack.decode(merged)] == list(range(1, 1001))


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=6),
    fmt=st.sampled_from(["msgpack", "json"]),
)
def test_merging_bodies_equals_encoding_all_events_at_once(sizes: list[int], fmt: str) -> None:
    codec = BodyCodec(fmt)  # type: ignore[arg-type]
    chunks = [events(n, first=1000 * i) for i, n in enumerate(sizes)]
    merged = codec.merge([codec.encode(chunk) for chunk in chunks], sum(sizes))
    assert merged == codec.encode([e for chunk in chunks for e in chunk])
