"""A private PostgreSQL server for the demo, tests and benchmarks.

`PostgresServer` runs `initdb` into its own directory (temporary unless given; an existing one is
reused as it is) and starts `postgres` on a free
loopback port (127.0.0.1 only, trust auth, no Unix socket), never touching a system cluster. It can
be stopped and started again on the same port and data directory (outage tests). PostgreSQL refuses
to run as root, so when the tests run as root (CI) the server runs as `nobody` with the data
directory handed over to it.

Databases: `create_database(name, template=...)` clones a template (fast, isolates tests), and
`drop_database(name)` removes one. Both are plain `psql` calls so they work from sync fixtures and
from inside a running event loop alike.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_bindir", "free_port"]

_UNPRIVILEGED_USER = "nobody"


def find_bindir() -> Path:
    """The directory of `initdb`/`pg_ctl`/`postgres`: `pg_config --bindir`, else the newest Debian install."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    raise RuntimeError("PostgreSQL server binaries not found (install postgresql; looked for initdb)")


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One private cluster; `start()`/`stop()` may be called repeatedly (same port, same data)."""

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        port: int | None = None,
        fsync: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = find_bindir()
        self._own_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="utopia-pg-")) if base_dir is None else base_dir
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self.port = port or free_port()
        self.user = "postgres"
        self._as_other = os.geteuid() == 0
        self._settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "fsync": "on" if fsync else "off",
            "synchronous_commit": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "max_wal_size": "4GB",
            "log_min_messages": "warning",
            "timezone": "UTC",
        }
        self._settings.update(settings or {})
        self._initialised = False

    # -- process control ---------------------------------------------------------------------
    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", _UNPRIVILEGED_USER, "--", *args] if self._as_other else args

    def _run(self, args: list[str]) -> None:
        proc = subprocess.run(self._cmd(args), capture_output=True, text=True, check=False, cwd=self.base_dir)
        if proc.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr}{proc.stdout}\n{log}")

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():  # a data folder from an earlier run
            self._initialised = True
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_other:
            shutil.chown(self.base_dir, user=_UNPRIVILEGED_USER)
            self.base_dir.chmod(0o700)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            for key, value in self._settings.items():
                conf.write(f"{key} = '{value}'\n")
        self._initialised = True

    def start(self) -> None:
        if not self._initialised:
            self.init()
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: roll back sessions; `immediate`: like a crash)."""
        if self.data_dir.joinpath("postmaster.pid").exists():
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            if self._own_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL on port {self.port} did not accept connections")

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- databases --------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        proc = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(dbname),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str, template: str = "template0") -> str:
        """Create `name` as a copy of `template` (no one may be connected to it); returns its URL."""
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
