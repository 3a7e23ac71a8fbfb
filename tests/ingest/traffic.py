"""Test traffic: events with every kind of duplicate and defect, as JetStream messages."""

from __future__ import annotations

import random

from tests.core.events import JSON, MSGPACK, encode, event
from tests.ingest.harness import Message

BASE_MS = 1_764_160_000_000
ITEMS = ["person", "car", "bicycle", "bus", "dog"]


def clean_stream(messages: int, per_message: int, *, seed: int = 1, duplicate_rate: float = 0.05) -> list[Message]:
    """Valid MessagePack traffic for locations 1..4 (4 is not in Dataset B), with re-sent ids."""
    rng = random.Random(seed)
    out: list[Message] = []
    next_id = 1
    for index in range(messages):
        location = rng.randint(1, 4)
        events = []
        for _ in range(per_message):
            if next_id > 1 and rng.random() < duplicate_rate:
                detection = rng.randint(max(1, next_id - 2000), next_id - 1)
            else:
                detection, next_id = next_id, next_id + 1
            ts = BASE_MS + index * 1000 + rng.randint(0, 999)
            events.append(event(location, location * 10 + rng.randint(1, 3), detection, rng.choice(ITEMS), ts))
        out.append((f"utopia.detections.{location}", encode(events, MSGPACK), {"Content-Type": MSGPACK}))
    return out


def site_stream(
    messages: int, per_message: int, *, locations: int = 4, seed: int = 1, duplicate_rate: float = 0.05
) -> list[Message]:
    """Valid MessagePack traffic as camera sites send it: a re-sent detection comes again from its
    own location and camera (so on its own subject), with another item name or timestamp at times,
    so only the seen-set can tell it is a copy."""
    rng = random.Random(seed)
    sent: dict[int, list[tuple[int, int]]] = {loc: [] for loc in range(1, locations + 1)}
    out: list[Message] = []
    next_id = 1
    for index in range(messages):
        location = rng.randint(1, locations)
        events = []
        for _ in range(per_message):
            ts = BASE_MS + index * 1000 + rng.randint(0, 999)
            if sent[location] and rng.random() < duplicate_rate:
                detection, camera = rng.choice(sent[location][-2000:])
            else:
                detection, camera, next_id = next_id, location * 10 + rng.randint(1, 3), next_id + 1
                sent[location].append((detection, camera))
            events.append(event(location, camera, detection, rng.choice(ITEMS), ts))
        out.append((f"utopia.detections.{location}", encode(events, MSGPACK), {"Content-Type": MSGPACK}))
    return out


def messy_stream(seed: int = 2) -> list[Message]:
    """Every duplicate and defect the contract names, in JSON and MessagePack."""
    rng = random.Random(seed)
    out: list[Message] = []
    for index in range(40):
        location = rng.randint(1, 4)
        content_type = JSON if index % 2 else MSGPACK
        events: list[object] = []
        for slot in range(30):
            detection = index * 100 + slot + 1
            ts = BASE_MS + index * 60_000
            events.append(event(location, 7, detection, rng.choice(ITEMS), ts))
            if slot % 7 == 0:  # a re-send within the batch, other fields differ
                events.append(event(location, 8, detection, "truck", ts + 5))
            if slot % 11 == 0 and index > 0:  # a re-send of an earlier message's event, minutes later
                earlier = (index - 1) * 100 + slot + 1
                events.append(event(location, 7, earlier, "car", ts + 180_000))
        events += [
            [("geographical_location_oid", location), ("detection_oid", 10**6 + index)],  # missing fields
            event(location, "seven", 10**6 + 100 + index, "car", BASE_MS),  # wrong type
            event(location, 7, 0, "car", BASE_MS),  # out of range
            event(location, 7, 10**6 + 200 + index, "", BASE_MS),  # empty item name
            event(location + 10, 7, 10**6 + 300 + index, "car", BASE_MS),  # location differs from subject
            "not an event",
        ]
        out.append((f"utopia.detections.{location}", encode(events, content_type), {"Content-Type": content_type}))
    out += [
        ("utopia.detections.1", b'[{"detection_oid": 1,', {"Content-Type": JSON}),  # undecodable
        ("utopia.detections.2", encode([event(2, 7, 999_999, "car", BASE_MS)], JSON), {"Content-Type": "text/csv"}),
        ("utopia.detections.north", encode([event(1, 7, 999_998, "car", BASE_MS)], JSON), {}),
    ]
    return out
