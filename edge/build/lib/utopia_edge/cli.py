"""`utopia-edge` (and `utopia edge`): run an edge agent from a source, with settings and flags."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import Sequence

from utopia_edge import __version__
from utopia_edge.agent import EXIT_SOURCE_ERROR, Agent
from utopia_edge.outbox import OutboxError
from utopia_edge.settings import EdgeSettings, SettingsError, load_edge_settings
from utopia_edge.sources import Source
from utopia_edge.sources.files import FileSource, FileSourceError
from utopia_edge.sources.simulate import SimulatedSource
from utopia_edge.sources.stdin import StdinSource

DESCRIPTION = (
    "Store-and-forward publisher of camera detections: every event is written to a durable outbox "
    "first and published to NATS JetStream in batches; nothing is lost when the link to the core drops."
)

# Flag -> dotted setting; flags win over UTOPIA_* env, which wins over the --config file.
_SETTING_FLAGS: dict[str, str] = {
    "nats_url": "nats.url",
    "outbox": "edge.outbox_path",
    "format": "edge.format",
    "fsync": "edge.fsync",
    "batch_size": "edge.batch_size",
    "linger_ms": "edge.linger_ms",
    "max_backlog_events": "edge.max_backlog_events",
    "max_backlog_bytes": "edge.max_backlog_bytes",
    "max_in_flight": "edge.max_in_flight",
    "metrics_port": "edge.metrics_port",
    "stats_interval": "edge.stats_interval_s",
    "log_level": "log_level",
}


def _rate(text: str) -> float:
    # 'max' is infinity rather than None: argparse would take None for "flag not given".
    if text.lower() in {"max", "0", "inf"}:
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (events per second, or 'max')") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a rate is positive (or 'max' for as fast as possible)")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent's flags; shared by `utopia-edge` and `utopia edge` so both behave the same."""
    source = parser.add_argument_group("source (exactly one)").add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--simulate",
        metavar="RATE",
        type=_rate,
        help="a simulated town at RATE events/s ('max': as fast as the outbox takes them)",
    )
    source.add_argument(
        "--file", metavar="PATH", help="Dataset A as CSV, JSON lines or Parquet; exits once all is acknowledged"
    )
    source.add_argument("--stdin", action="store_true", help="JSON lines on standard input, until EOF")
    files = parser.add_argument_group("file options")
    files.add_argument("--rate", type=_rate, help="events/s read from --file (default: as fast as possible)")
    files.add_argument(
        "--file-format", choices=["csv", "jsonl", "parquet"], help="override the format told by the extension"
    )
    sim = parser.add_argument_group("simulation options")
    sim.add_argument("--count", type=int, help="stop after this many simulated events (then exit once acknowledged)")
    sim.add_argument("--locations", type=int, default=20, help="locations in the town (default 20)")
    sim.add_argument("--cameras", type=int, default=4, help="average cameras per location (default 4)")
    sim.add_argument(
        "--duplicates",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of events re-sent with an earlier detection_oid (default 0)",
    )
    sim.add_argument(
        "--bad",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of invalid events, published for the core to dead-letter (default 0)",
    )
    sim.add_argument("--day-night", action="store_true", help="modulate the rate by time of day")
    sim.add_argument(
        "--day-length",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="length of a simulated day (default: a real day, local time)",
    )
    sim.add_argument("--seed", type=int, help="random seed (the same seed repeats the same detection_oids)")
    opts = parser.add_argument_group("settings (override UTOPIA_* env and the config file)")
    opts.add_argument("--nats-url", help="nats://host:port, comma-separated for a cluster (nats.url)")
    opts.add_argument("--outbox", metavar="PATH", help="outbox SQLite file (edge.outbox_path)")
    opts.add_argument("--format", choices=["msgpack", "json"], help="payload encoding (edge.format, default msgpack)")
    opts.add_argument(
        "--fsync", choices=["normal", "full", "off"], help="outbox durability (edge.fsync, default normal)"
    )
    opts.add_argument("--batch-size", type=int, help="events per batch (edge.batch_size)")
    opts.add_argument("--linger-ms", type=float, help="max wait before sealing a batch (edge.linger_ms)")
    opts.add_argument("--max-backlog-events", type=int, help="outbox bound in events (edge.max_backlog_events)")
    opts.add_argument("--max-backlog-bytes", type=int, help="outbox bound in bytes (edge.max_backlog_bytes)")
    opts.add_argument("--max-in-flight", type=int, help="batches awaiting their ack at once (edge.max_in_flight)")
    opts.add_argument(
        "--metrics-port", type=int, help="serve Prometheus text on this loopback port (edge.metrics_port)"
    )
    opts.add_argument("--stats-interval", type=float, help="seconds between stats log lines, 0: none")
    opts.add_argument("--log-level", choices=["debug", "info", "warning", "error"])  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="utopia-edge", description=DESCRIPTION)
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (env UTOPIA_CONFIG); env and flags win")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_arguments(parser)
    return parser


def make_source(args: argparse.Namespace) -> Source:
    if args.rate is not None and args.file is None:
        raise SettingsError("--rate applies to --file (--simulate takes its rate directly)")
    if args.count is not None and (args.file is not None or args.stdin):
        raise SettingsError("--count applies to --simulate")
    if args.file is not None:
        return FileSource(args.file, fmt=args.file_format, rate=_finite(args.rate))
    if args.stdin:
        return StdinSource(sys.stdin.buffer)
    return SimulatedSource(
        _finite(args.simulate),
        count=args.count,
        locations=args.locations,
        cameras_per_location=args.cameras,
        duplicates=args.duplicates,
        bad=args.bad,
        day_night=args.day_night,
        day_length_s=args.day_length,
        seed=args.seed,
    )


def _finite(rate: float | None) -> float | None:
    """None (as fast as possible) for 'max'."""
    return None if rate is None or math.isinf(rate) else rate


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


async def run_agent(settings: EdgeSettings, source: Source) -> int:
    """Run an agent until done or signalled (SIGTERM/SIGINT: graceful; a second one: immediate)."""
    agent = Agent(settings, source)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.request_stop)
    try:
        return await agent.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """The handler of `utopia-edge` and `utopia edge`; raises `SettingsError` for a bad setting."""
    overrides = {setting: getattr(args, flag) for flag, setting in _SETTING_FLAGS.items()}
    settings = load_edge_settings(args.config, overrides=overrides)
    configure_logging(settings.log_level)
    try:
        source = make_source(args)
    except (FileSourceError, ValueError) as exc:
        print(f"utopia-edge: {exc}", file=sys.stderr)
        return EXIT_SOURCE_ERROR
    try:
        return asyncio.run(run_agent(settings, source))
    except OutboxError as exc:
        print(f"utopia-edge: {exc}", file=sys.stderr)
        return EXIT_SOURCE_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except SettingsError as exc:
        print(f"utopia-edge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
