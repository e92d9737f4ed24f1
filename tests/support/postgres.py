"""A real PostgreSQL server for the tests and benchmarks, in a temporary directory.

`PostgresServer.start()` runs `initdb` into a fresh folder, starts `postgres` on a free
loopback port (its Unix socket in the same folder), and `stop()` removes it all. The
binaries come from PATH, /usr/local/bin or Debian's /usr/lib/postgresql/*/bin (`./dev test`
installs Debian's `postgresql` when they are missing and it runs as root). Running as
root, the server runs as the `postgres` (else `nobody`) user, as PostgreSQL requires.

Loaded as a pytest plugin: `postgres_server` (one per session) and `postgres_url` (a new,
empty database for each test). Missing binaries fail the test with what to install;
they never skip it.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER = "flujo"
_SEARCH = ("/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def binaries() -> Path:
    """The folder holding `initdb`, `pg_ctl` and `postgres`."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for folder in _SEARCH:
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, in "
        "/usr/local/bin or /usr/lib/postgresql/*/bin: install Debian's `postgresql` package "
        "(`./dev test` does it when run as root)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    """A prefix running a command as a non-root user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["setpriv", f"--reuid={name}", f"--regid={name}", "--init-groups", "--"]
    raise PostgresMissing("running as root, and no `postgres` or `nobody` user to run the server")


@dataclass
class PostgresServer:
    """One running server; `url(database)` is a libpq URL on loopback TCP."""

    folder: Path
    port: int
    bin: Path
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls, *, fsync: bool = False) -> PostgresServer:
        """initdb into a new temporary folder and start the server (fsync off by default:
        the tests restart and kill it, they never lose power)."""
        folder = Path(tempfile.mkdtemp(prefix="flujo-pg-"))
        prefix = _as_server_user()
        if prefix:
            user = prefix[1].split("=", 1)[1]
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        server = cls(folder, _free_port(), binaries())
        subprocess.run(
            [
                *prefix,
                str(server.bin / "initdb"),
                "-D",
                str(folder / "data"),
                "-U",
                USER,
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{folder}'",
            "fsync": "on" if fsync else "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
        }
        with (folder / "data" / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        server._pg_ctl("start", "-w", "-o", f"-p {server.port}")
        server.create_database("flujo")
        return server

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [
                *_as_server_user(),
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-l",
                str(self.folder / "server.log"),
                *args,
            ],
            check=True,
            capture_output=True,
        )

    def url(self, database: str = "flujo") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (fast: connections are cut), stay down `down_s`, start again."""
        self._pg_ctl("stop", "-w", "-m", "fast")
        time.sleep(down_s)
        self._pg_ctl("start", "-w", "-o", f"-p {self.port}")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("stop", "-w", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session, removed at the end."""
    try:
        server = PostgresServer.start()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or b"").decode(errors="replace")
        pytest.fail(f"PostgreSQL did not start: {exc}\n{output}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database on the session's server."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a run store goes, once per backend: a SQLite file, then a new PostgreSQL
    database."""
    if request.param == "sqlite":
        return tmp_path / "runs.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
