"""Throwaway PostgreSQL clusters and Redis servers on free loopback ports, for tests and
the soak benchmark that stop, restart or kill them. The machine's shared servers are never
touched: each one here lives in its own temporary folder and dies with the test.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
user (``runuser``) and lives in a folder of its own under the system's temporary folder
(the caller's folder may not be reachable by that user); otherwise it runs as the current
user in the folder given. ``remove()`` deletes the cluster's files.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30, up: bool = True) -> None:
    """Wait until something listens on ``port`` (or, with ``up=False``, nothing does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError("port %d still %s after %ss" % (port, "closed" if up else "open", timeout))


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class PostgresCluster:
    """A PostgreSQL cluster of its own: ``initdb`` into ``folder``, served on a free port
    with trust authentication on loopback only."""

    def __init__(self, folder: Path) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = binaries
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            folder = Path(tempfile.mkdtemp(prefix="testimony-pg-"))
            shutil.chown(folder, "postgres", "postgres")
        else:
            folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.data = folder / "data"
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                "unix_socket_directories = '%s'\nfsync = off\n"
                "max_connections = 200\nlog_min_messages = fatal\n" % (self.port, folder)
            )

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, timeout=120, check=check, cwd="/")

    def url(
        self, database: str = "postgres", user: str = "postgres", password: str | None = None
    ) -> str:
        credentials = user + (":" + password if password else "")
        return "postgresql+psycopg://%s@127.0.0.1:%d/%s" % (credentials, self.port, database)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "restart",
        )

    def createdb(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def tool(self, name: str) -> str:
        return str(self.bin / name)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster(folder: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class RedisServer:
    """A redis-server of its own on a free port, keeping nothing on disk."""

    def __init__(self, folder: Path) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        wait_for_port(self.port, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
