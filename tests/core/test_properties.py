"""The Rust core and the pure-Python reference agree exactly on random batch sequences."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_kind
from hypothesis import strategies as st

import utopia
from tests.core.events import JSON, MSGPACK, encode, event
from utopia import copy_format
from utopia.reference import ReferenceCore

HORIZON_MS = 1000
BASE_MS = 1_764_160_000_000
LOCATIONS = [1, 2, 3]

names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
bad_integers = st.sampled_from([0, -5, 2**63, 2**64 - 1, 1.5, "7", True, None, [1], {"a": 1}])
bad_items = st.sampled_from(["", "x\x00y", "é" * 5001, 5, None, ["car"], False])
bad_timestamps = st.sampled_from([-1, 253_402_300_800_000, 2**63 + 1, 1.0, "now", None])


@st.composite
def events(draw: st.DrawFn, location: int, *, allow_huge: bool) -> Any:
    """A valid event most of the time; otherwise one with a single kind of defect."""
    pairs = event(
        location,
        draw(st.integers(1, 4)),
        draw(st.integers(1, 40)),  # a small id pool makes duplicates common
        draw(st.sampled_from(["person", "car", "bicycle", "bus"]) | names),
        BASE_MS + draw(st.integers(0, 5 * 60_000)),
    )
    kind = draw(st.sampled_from(["ok"] * 8 + ["missing", "bad", "extra", "twice", "mismatch", "not_object"]))
    index = draw(st.integers(0, 4))
    if kind == "missing":
        del pairs[index]
    elif kind == "bad":
        strategy = bad_items if index == 3 else bad_timestamps if index == 4 else bad_integers
        value = draw(strategy)
        if not allow_huge and isinstance(value, int) and value > 2**64 - 1:
            value = 0
        pairs[index] = (pairs[index][0], value)
    elif kind == "extra":
        pairs.insert(draw(st.integers(0, 5)), ("camera_vendor", draw(st.sampled_from([{"x": [1, 2]}, "acme", 3.5]))))
    elif kind == "twice":
        pairs.append(pairs[index])
    elif kind == "mismatch":
        pairs[0] = ("geographical_location_oid", location + 100)
    elif kind == "not_object":
        return draw(st.sampled_from([7, "event", [1, 2], None]))
    return pairs


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, str, str | None]:
    location = draw(st.sampled_from([*LOCATIONS, 99]))
    content_type = draw(st.sampled_from([JSON, MSGPACK, None]))
    wire = MSGPACK if content_type == MSGPACK else JSON
    batch = draw(st.lists(events(location, allow_huge=wire == JSON), min_size=1, max_size=6))
    single = len(batch) == 1 and isinstance(batch[0], list) and draw(st.booleans())
    payload = encode(batch, wire, single=single)
    damage = draw(st.sampled_from(["none"] * 12 + ["truncate", "subject", "content_type", "garbage"]))
    subject = f"utopia.detections.{location}"
    if damage == "truncate":
        payload = payload[: draw(st.integers(0, max(len(payload) - 1, 0)))]
    elif damage == "subject":
        subject = draw(
            st.sampled_from(
                ["utopia.detections.x", "utopia.detections.0", "utopia.detections.07", "other.1", "utopia.detections."]
            )
        )
    elif damage == "content_type":
        content_type = "text/csv"
    elif damage == "garbage":
        payload = draw(st.binary(max_size=40))
    return payload, subject, content_type


steps = st.one_of(
    st.tuples(st.just("batch"), st.lists(messages(), min_size=1, max_size=5)),
    st.tuples(st.just("commit"), st.integers(0, 3)),
    st.tuples(st.just("abort"), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.integers(0, 2 * HORIZON_MS)),
    st.tuples(st.just("locations"), st.lists(st.sampled_from(LOCATIONS), unique=True)),
    st.tuples(st.just("warm"), st.lists(st.integers(1, 40), max_size=5)),
)


def same_batch(rust: utopia.Batch, ref: Any) -> None:
    assert (rust.received, rust.accepted, rust.duplicates, rust.rejected, rust.unmatched) == (
        ref.received,
        ref.accepted,
        ref.duplicates,
        ref.rejected,
        ref.unmatched,
    )
    assert [(r.message_index, r.event_index, r.field, r.code) for r in rust.rejects] == [
        (r.message_index, r.event_index, r.field, r.code) for r in ref.rejects
    ]
    assert rust.copy_data == ref.copy_data
    for reject in rust.rejects:
        note_kind(f"reject {reject.field} {reject.code}")
    if rust.duplicates:
        note_kind("batch with duplicates")
    if rust.unmatched and rust.accepted > rust.unmatched:
        note_kind("batch with matched and unmatched events")
    assert rust.ids() == ref.ids()
    assert rust.counts() == ref.counts_columns()
    live_rows = [row for _, body in rust.live() for row in json.loads(body)]
    assert sorted(tuple(r.values()) for r in live_rows) == sorted(tuple(r) for r in copy_format.decode(rust.copy_data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=25))
def test_core_agrees_with_reference(sequence: list[tuple[str, Any]]) -> None:
    rust, ref = utopia.Core(horizon_ms=HORIZON_MS), ReferenceCore(horizon_ms=HORIZON_MS)
    now = BASE_MS
    open_tokens: list[tuple[int, int]] = []
    for action, arg in sequence:
        if action == "batch":
            payloads, subjects, content_types = (list(x) for x in zip(*arg, strict=True))
            rust_batch = rust.process(payloads, subjects, content_types, now_ms=now, live=True)
            ref_batch = ref.process(payloads, subjects, content_types, now_ms=now)
            same_batch(rust_batch, ref_batch)
            open_tokens.append((rust_batch.token, ref_batch.token))
        elif action in ("commit", "abort") and open_tokens:
            rust_token, ref_token = open_tokens.pop(arg % len(open_tokens))
            if action == "commit":
                assert rust.commit(rust_token, now_ms=now) == ref.commit(ref_token, now_ms=now)
            else:
                assert rust.abort(rust_token) == ref.abort(ref_token)
        elif action == "wait":
            now += arg
        elif action == "locations":
            oids = arg
            rust.set_locations(oids, [f"Location {o}" for o in oids])
            ref.set_locations(oids, [f"Location {o}" for o in oids])
        elif action == "warm":
            at = [now - HORIZON_MS // 2] * len(arg)
            rust.warm(arg, at, now_ms=now)
            ref.warm(arg, at, now_ms=now)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=200),
            st.sampled_from(["utopia.detections.1", "utopia.detections.18446744073709551616", "x"]),
            st.sampled_from([JSON, MSGPACK, None, "application/x-msgpack"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_arbitrary_bytes_become_rejects_never_errors(messages_: list[tuple[bytes, str, str | None]]) -> None:
    core = utopia.Core()
    payloads, subjects, content_types = (list(x) for x in zip(*messages_, strict=True))
    batch = core.process(payloads, subjects, content_types)
    assert batch.received == batch.accepted + batch.duplicates + batch.rejected
    for reject in batch.rejects:
        assert reject.payload in payloads[reject.message_index]
        assert reject.reason.startswith(f"{reject.field}: ")
