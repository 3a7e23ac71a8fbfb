"""`utopia replay --from T [--to T]`: reprocess history from JetStream, idempotently."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from utopia import config, logs
from utopia.ingest.replay import ReplayProgress, replay
from utopia.ingest.worker import IngestError


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-11-26T08:00:00Z, got {text!r}"
        ) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("replay", help="reprocess history from the DETECTIONS stream")
    parser.add_argument("--from", dest="start", type=_when, required=True, help="ISO 8601 start (UTC if no zone)")
    parser.add_argument("--to", dest="end", type=_when, help="ISO 8601 end, exclusive (default: now)")
    parser.add_argument("--dead-letter", action="store_true", help="send rejects to the DLQ again")
    parser.set_defaults(handler=run)


def _print(progress: ReplayProgress) -> None:
    print(
        f"replay: {progress.messages:,}/{progress.total:,} messages, {progress.received:,} events: "
        f"{progress.stored:,} stored, {progress.duplicates:,} duplicates or already stored, "
        f"{progress.rejected:,} rejected",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    logs.setup(settings.log_level)
    if args.end is not None and args.end <= args.start:
        print("utopia replay: --to must be later than --from", file=sys.stderr)
        return 2
    try:
        asyncio.run(replay(settings, args.start, args.end, dead_letter=args.dead_letter, report=_print))
    except IngestError as exc:
        print(f"utopia replay: {exc}", file=sys.stderr)
        return 1
    return 0
