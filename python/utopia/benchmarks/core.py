"""Core hot path: decode + validate + dedup + join + COPY output, Rust against the reference.

Messages of 500 events, 5 % duplicates, one process call per 20 messages (10,000 events) followed
by its commit, on one core. Prints a table with medians of several runs, and the seen-set's memory
per id at 10 M ids.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from utopia import Core
from utopia.reference import ReferenceCore

EVENTS_PER_MESSAGE = 500
MESSAGES_PER_BATCH = 20
DUPLICATE_RATE = 0.05
ITEMS = ["person", "car", "bicycle", "bus", "truck", "dog", "motorcycle", "scooter"]
BASE_MS = 1_764_160_000_000
JSON = "application/json"
MSGPACK = "application/msgpack"


class _Engine(Protocol):
    def process(
        self, payloads: Any, subjects: Any, content_types: Any, *, now_ms: int | None = None
    ) -> Any: ...  # pragma: no cover
    def commit(self, token: int, now_ms: int | None = None) -> int: ...  # pragma: no cover


def make_batches(
    events: int, content_type: str, seed: int = 7, *, first_id: int = 1
) -> list[tuple[list[bytes], list[str], list[Any]]]:
    """Payload batches with re-sent detection ids (within and across messages)."""
    rng = random.Random(seed)
    encode = msgspec.msgpack.encode if content_type == MSGPACK else msgspec.json.encode
    next_id = first_id
    recent: list[int] = []
    messages: list[tuple[bytes, str]] = []
    for message in range(events // EVENTS_PER_MESSAGE):
        location = rng.randint(1, 30)
        rows = []
        # A live stream at 10,000 events/s: detections a few seconds old when they arrive.
        now_ms = BASE_MS + message * EVENTS_PER_MESSAGE // 10
        for _ in range(EVENTS_PER_MESSAGE):
            if recent and rng.random() < DUPLICATE_RATE:
                detection = rng.choice(recent)
            else:
                detection = next_id
                next_id += 1
                recent.append(detection)
                if len(recent) > 5000:
                    recent.pop(0)
            rows.append(
                {
                    "geographical_location_oid": location,
                    "video_camera_oid": location * 100 + rng.randint(1, 8),
                    "detection_oid": detection,
                    "item_name": rng.choice(ITEMS),
                    "timestamp_detected": now_ms - rng.randint(0, 3000),
                }
            )
        messages.append((encode(rows), f"utopia.detections.{location}"))
    batches = []
    for start in range(0, len(messages), MESSAGES_PER_BATCH):
        chunk = messages[start : start + MESSAGES_PER_BATCH]
        batches.append(([m[0] for m in chunk], [m[1] for m in chunk], [content_type] * len(chunk)))
    return batches


def run_once(engine: _Engine, batches: list[tuple[list[bytes], list[str], list[Any]]]) -> tuple[float, int]:
    accepted = 0
    gc.collect()
    start = time.perf_counter()
    for payloads, subjects, content_types in batches:
        batch = engine.process(payloads, subjects, content_types, now_ms=BASE_MS)
        # What the writer needs: the COPY buffer and the rollup counts.
        _ = batch.copy_data
        accepted += batch.accepted
        engine.commit(batch.token, now_ms=BASE_MS)
    return time.perf_counter() - start, accepted


def throughput(factory: Callable[[], _Engine], batches: list[Any], events: int, repeats: int) -> tuple[float, int]:
    rates = []
    accepted = 0
    for _ in range(repeats):
        seconds, accepted = run_once(factory(), batches)
        rates.append(events / seconds)
    return statistics.median(rates), accepted


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def seen_set_memory(ids: int) -> tuple[int, int, int]:
    """(ids held, seen-set bytes as allocated, resident-memory growth) after warming `ids` ids."""
    core = Core()
    gc.collect()
    before = rss_bytes()
    chunk = 1_000_000
    rng = random.Random(3)
    for start in range(0, ids, chunk):
        batch_ids = [rng.getrandbits(62) + 1 for _ in range(min(chunk, ids - start))]
        core.warm(batch_ids, [BASE_MS] * len(batch_ids), now_ms=BASE_MS)
        del batch_ids
    gc.collect()
    held, allocated, *_ = core.stats()
    return held, allocated, rss_bytes() - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per Rust run")
    parser.add_argument("--reference-events", type=int, default=100_000, help="events per reference run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seen-ids", type=int, default=10_000_000)
    args = parser.parse_args(argv)

    print(
        f"core hot path: {EVENTS_PER_MESSAGE} events/message, {MESSAGES_PER_BATCH} messages/call, "
        f"{DUPLICATE_RATE:.0%} duplicates, 1 thread, median of {args.repeats}"
    )
    print(f"{'format':<12}{'rust ev/s':>14}{'reference ev/s':>18}{'ratio':>9}{'target':>22}")
    targets = {MSGPACK: 5_000_000, JSON: 2_000_000}
    ok = True
    for content_type in (MSGPACK, JSON):
        rust_rate, rust_accepted = throughput(Core, make_batches(args.events, content_type), args.events, args.repeats)
        ref_rate, _ = throughput(
            ReferenceCore, make_batches(args.reference_events, content_type), args.reference_events, 3
        )
        ratio = rust_rate / ref_rate
        target = targets[content_type]
        met = rust_rate >= target and ratio >= 5
        ok &= met
        name = content_type.split("/")[1]
        verdict = f">={target / 1e6:.0f}M & >=5x: {'met' if met else 'MISSED'}"
        print(f"{name:<12}{rust_rate:>14,.0f}{ref_rate:>18,.0f}{ratio:>8.1f}x{verdict:>22}")
        assert rust_accepted < args.events, "duplicates were not dropped"
    if args.seen_ids:
        held, allocated, rss = seen_set_memory(args.seen_ids)
        per_id, rss_per_id = allocated / held, rss / held
        met = max(per_id, rss_per_id) <= 24
        ok &= met
        print(
            f"seen-set at {held:,} ids: {allocated / 2**20:,.0f} MiB allocated = {per_id:.1f} B/id, "
            f"RSS growth {rss_per_id:.1f} B/id (target <= 24): {'met' if met else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
