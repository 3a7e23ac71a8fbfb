"""`utopia demo`: what runs end to end today, on one machine with embedded defaults.

At this stage that is the Rust core over simulated camera traffic (JSON and MessagePack, 2 %
re-sent events, a trickle of bad ones) with a live summary; NATS, the database, the API and the
dashboard join here as their issues land.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from utopia import Core, config
from utopia.benchmarks.core import BASE_MS, JSON, MSGPACK, make_batches

LOCATION_NAMES = [f"Location {oid}" for oid in range(1, 31)]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("demo", help="run what exists of the system on this machine")
    parser.add_argument("--headless", action="store_true", help="no dashboard (scripts, CI)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    core = Core(horizon_ms=int(settings.dedup.horizon_s * 1000))
    core.set_locations(list(range(1, 31)), LOCATION_NAMES)
    print("utopia demo: the Rust core over simulated camera traffic (NATS, storage, API and dashboard come next)")
    batches = make_batches(200_000, MSGPACK, duplicate_rate=0.02) + make_batches(
        200_000, JSON, seed=8, first_id=10**9, duplicate_rate=0.02
    )
    # A trickle of bad events: one undecodable message and one event of the wrong type per round.
    bad = [(b"{not json", "utopia.detections.1", None), (b'{"detection_oid": "x"}', "utopia.detections.2", None)]
    totals = dict.fromkeys(["received", "accepted", "duplicates", "rejected", "unmatched"], 0)
    deadline = time.monotonic() + args.seconds
    rounds = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        for payloads, subjects, content_types in batches:
            # Each round replays the same traffic later, past the dedup horizon.
            now_ms = BASE_MS + rounds * 2 * int(settings.dedup.horizon_s * 1000)
            batch = core.process(
                [*payloads, *(b[0] for b in bad)],
                [*subjects, *(b[1] for b in bad)],
                [*content_types, *(b[2] for b in bad)],
                now_ms=now_ms,
            )
            core.commit(batch.token, now_ms=now_ms)
            for key in totals:
                totals[key] += getattr(batch, key)
            if rounds == 0 and batch.rejects and totals["rejected"] <= 2:
                print(f"  dead-letter reason: {batch.rejects[0].reason}")
        rounds += 1
        rate = 400_000 / (time.perf_counter() - started)
        seen, seen_bytes, *_ = core.stats()
        print(
            f"round {rounds}: {rate:,.0f} events/s | received {totals['received']:,} accepted {totals['accepted']:,} "
            f"duplicates {totals['duplicates']:,} rejected {totals['rejected']:,} | seen-set {seen:,} ids, "
            f"{seen_bytes / max(seen, 1):.1f} B/id"
        )
    return 0
