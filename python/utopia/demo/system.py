"""The demo's processes: embedded servers, ingest, edge agents and the API, started in order and
stopped in reverse, so that nothing is left running whatever way the demo ends.

Data lives in a folder of its own (`.data/demo` by default), so a second run reuses the database,
the stream and the edge outboxes. Servers take free loopback ports: a machine may already run
NATS or PostgreSQL on the default ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import importlib.util
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from utopia import config
from utopia.embedded.nats import NatsServer, free_port
from utopia.embedded.postgres import PostgresServer
from utopia.ingest.provisioning import provision
from utopia.storage import migrations
from utopia.storage.locations import load_locations, read_locations

log = logging.getLogger("utopia.demo")

DATABASE = "utopia"
SITES = 3
TOTAL_RATE = 10_000
DUPLICATES = 0.02
BAD = 0.0005


def postgres_dir(data_dir: Path) -> Path:
    """Where the demo's PostgreSQL keeps its data. As root the server runs as `nobody`, who may not
    be able to reach a folder under a private home directory, so it then lives in /var/tmp (kept
    across runs like the rest of the data, one folder per demo data folder)."""
    if os.geteuid() != 0:
        return data_dir / "postgres"
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"utopia-demo-postgres-{digest}"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class DemoSystem:
    data_dir: Path
    database_url: str | None = None
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    children: list[Child] = field(default_factory=list)
    settings: config.Settings | None = None
    api_url: str | None = None
    api_token: str | None = None

    # -- start -------------------------------------------------------------------------------
    async def start(self, config_file: str | None) -> config.Settings:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServer(self.data_dir / "nats", port=free_port())
        await asyncio.to_thread(self.nats.start)
        database_url = self.database_url
        if database_url is None:
            self.postgres = PostgresServer(base_dir=postgres_dir(self.data_dir), fsync=True)
            await asyncio.to_thread(self.postgres.start)
            if DATABASE not in self.postgres.psql("SELECT datname FROM pg_database").split():
                self.postgres.create_database(DATABASE)
            database_url = self.postgres.url(DATABASE)
        settings = config.load(config_file, overrides={"nats.url": self.nats.url, "database.url": database_url})
        self.settings = settings
        await self._prepare(settings)
        self._start_ingest(settings)
        for site in range(1, SITES + 1):
            self._start_site(settings, site)
        await self._start_api(settings)
        return settings

    async def _prepare(self, settings: config.Settings) -> None:
        conn = await asyncpg.connect(settings.database.url, timeout=10)
        try:
            report = await migrations.run(conn, settings.storage)
            log.info("database ready", extra={"flavour": report.flavour, "applied": len(report.applied)})
            sample = importlib.resources.files("utopia.demo").joinpath("locations.csv")
            with importlib.resources.as_file(sample) as path:
                await load_locations(conn, read_locations(Path(path)))
        finally:
            await conn.close()
        for line in await provision(settings):
            log.info(f"nats: {line}")

    def _env(self, settings: config.Settings) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UTOPIA_")}
        env.update(UTOPIA_NATS_URL=settings.nats.url, UTOPIA_DATABASE_URL=settings.database.url)
        # Marks the demo's processes, so a test (or a person) can tell that none is left over.
        env["UTOPIA_DEMO_DATA_DIR"] = str(self.data_dir)
        return env

    def _spawn(self, name: str, args: list[str], settings: config.Settings, **env: str) -> Child:
        log_path = self.data_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            # A session of its own: Ctrl-C reaches the demo, which stops children in order.
            proc = subprocess.Popen(
                args,
                env={**self._env(settings), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def _start_ingest(self, settings: config.Settings) -> None:
        port = free_port()
        self._spawn("ingest", [sys.executable, "-m", "utopia.cli", "ingest", "--metrics-port", str(port)], settings)
        log.info("ingest started", extra={"metrics": f"http://127.0.0.1:{port}/metrics"})

    def _start_site(self, settings: config.Settings, site: int) -> None:
        outbox = self.data_dir / f"site-{site}" / "outbox.sqlite3"
        outbox.parent.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "utopia_edge.cli",
            "--simulate", str(TOTAL_RATE // SITES),
            "--duplicates", str(DUPLICATES),
            "--bad", str(BAD),
            "--seed", str(site),
            "--outbox", str(outbox),
        ]  # fmt: skip
        self._spawn(f"site-{site}", args, settings)

    async def _start_api(self, settings: config.Settings) -> None:
        """The API, when this build has it (the `utopia-server` package)."""
        if importlib.util.find_spec("utopia_server") is None or importlib.util.find_spec("utopia.commands.api") is None:
            log.info("API not part of this build: skipped")
            return
        port = free_port()
        self._spawn("api", [sys.executable, "-m", "utopia.cli", "api", "--port", str(port)], settings)
        self.api_url = f"http://127.0.0.1:{port}"
        token = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "utopia.cli", "token", "create", "--role", "operator", "--name", "demo"],
            env=self._env(settings),
            capture_output=True,
            text=True,
            check=False,
        )
        if token.returncode == 0:
            self.api_token = token.stdout.strip().splitlines()[-1]

    # -- health ------------------------------------------------------------------------------
    def exited(self) -> list[Child]:
        return [c for c in self.children if c.proc.poll() is not None]

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Edge agents first (they flush their outboxes), then ingest, the API, the servers."""
        order = sorted(self.children, key=lambda c: 0 if c.name.startswith("site") else 1 if c.name == "ingest" else 2)
        for group in ("site", "ingest", "api"):
            members = [c for c in order if c.name.startswith(group)]
            for child in members:
                if child.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.send_signal(signal.SIGTERM)
            for child in members:
                try:
                    child.proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        self.children.clear()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()
