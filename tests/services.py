"""Real PostgreSQL and Redis servers for the tests, started on loopback by the test setup itself.

A pytest plugin (listed in ``tests/conftest.py``'s ``pytest_plugins``). Each server starts once
per session, the first time a test asks for it, and is stopped at the end:

- ``postgres_server``: a throwaway cluster (``initdb`` + ``pg_ctl`` from Debian's ``postgresql``
  package, found on PATH or under ``/usr/lib/postgresql/*/bin``) in a temporary folder, on a free
  127.0.0.1 port, trust authentication, fsync off. PostgreSQL refuses to run as root, so as root
  the cluster belongs to the ``postgres`` user (created by the Debian package) or ``nobody``.
- ``redis_server``: ``redis-server`` on a free 127.0.0.1 port, no persistence.

``VOXCORD_TEST_POSTGRES_URL`` / ``VOXCORD_TEST_REDIS_URL`` set in the environment name an
existing server instead (its data is wiped by the tests). When neither the variable nor the
binaries are there, the tests that need the server are skipped on a developer's machine and
fail under CI (``CI`` set to anything but ``false``/``0``), so a CI image without the servers
cannot pass green while testing only SQLite.

The store tests' ``database_url`` fixture reads ``VOXCORD_TEST_POSTGRES_URL``; the autouse
fixture below starts the server and sets that variable just for the PostgreSQL cases, so runs
that never touch PostgreSQL never start it.
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
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ENV = "VOXCORD_TEST_POSTGRES_URL"
REDIS_ENV = "VOXCORD_TEST_REDIS_URL"
STORE_TEST_DATABASE = "voxcord_store_tests"
STARTUP_TIMEOUT_S = 30.0
INSTALL_HINT = "install them with: sudo apt-get install postgresql redis-server (or set {env})"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def unavailable(what: str, env: str) -> None:
    """Skip on a developer machine, fail in CI: a green CI run must have tested every backend."""
    message = f"{what} not found; " + INSTALL_HINT.format(env=env)
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    # A small race (another process could take the port before the server binds it) is
    # acceptable on a test machine; the server then fails to start with a clear log.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"server on port {port} did not start; log tail:\n{tail}")


# ---------------------------------------------------------------- PostgreSQL


def find_postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, else Debian's newest versioned folder."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent  # Debian symlinks only some tools onto PATH
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def server_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None for ourselves, a system user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    bin_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._client("createdb", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._client("dropdb", "--if-exists", "--force", name)

    def _client(self, tool: str, *args: str) -> None:
        # Sync client tools rather than asyncpg: fixtures stay usable from sync and async tests alike.
        subprocess.run([str(self.bin_dir / tool), "-h", self.host, "-p", str(self.port), "-U", self.user, *args],
                       check=True, capture_output=True)


@contextlib.contextmanager
def run_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    owner = server_user()
    as_owner = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}
    # mkdtemp under /tmp, not pytest's tmp_path: that one is 0700 and root's, so a server running
    # as 'postgres' could not reach it.
    root = Path(tempfile.mkdtemp(prefix="voxcord-pg-"))
    data, log = root / "data", root / "server.log"
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    port = free_port()
    user = "voxcord"
    try:
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
             "--no-sync", "--locale=C"],
            check=True, capture_output=True, cwd=root, **as_owner,
        )
        # Test-only settings: no fsync (the cluster is thrown away), socket in our folder
        # (Debian's /var/run/postgresql may not exist or not be ours), TCP on loopback only.
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, cwd=root, **as_owner,
        )
        try:
            wait_for_port(port, None, log)
            server = PostgresServer(host="127.0.0.1", port=port, user=user, bin_dir=bin_dir)
            server.create_database(STORE_TEST_DATABASE)
            yield server
        finally:
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           check=False, capture_output=True, cwd=root, **as_owner)
    except subprocess.CalledProcessError as error:
        output = (error.stdout or b"").decode(errors="replace") + (error.stderr or b"").decode(errors="replace")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{Path(error.cmd[0]).name} failed:\n{output}\n{tail}") from error
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | str]:
    """The session's PostgreSQL: a started throwaway cluster, or the URL from VOXCORD_TEST_POSTGRES_URL."""
    external = os.environ.get(POSTGRES_ENV)
    if external:
        yield external
        return
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        unavailable("PostgreSQL (initdb, pg_ctl)", POSTGRES_ENV)
    with run_postgres(bin_dir) as server:
        yield server


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer | str) -> Iterator[str]:
    """A fresh, empty database on the session's server for one test, dropped afterwards."""
    if isinstance(postgres_server, str):
        yield postgres_server  # an external server: the store tests' wipe keeps it clean
        return
    name = f"voxcord_test_{os.getpid()}_{next(_database_numbers)}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def _store_tests_postgres_url(postgres_server: PostgresServer | str) -> str:
    if isinstance(postgres_server, str):
        return postgres_server
    return postgres_server.url(STORE_TEST_DATABASE)  # created with the cluster


@pytest.fixture(autouse=True)
def _postgres_for_store_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start PostgreSQL for the ``database_url[postgresql]`` cases of tests/bot/store only.

    That fixture reads VOXCORD_TEST_POSTGRES_URL and wipes the Voxcord tables before each test.
    """
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("database_url") != "postgresql":
        return
    monkeypatch.setenv(POSTGRES_ENV, request.getfixturevalue("_store_tests_postgres_url"))


# ---------------------------------------------------------------- Redis


@dataclass(frozen=True)
class RedisServer:
    url: str


@contextlib.contextmanager
def run_redis(executable: str) -> Iterator[RedisServer]:
    root = Path(tempfile.mkdtemp(prefix="voxcord-redis-"))
    log = root / "redis.log"
    port = free_port()
    # No persistence and loopback only: a test server that leaves nothing behind.
    command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(root), "--logfile", str(log), "--daemonize", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_for_port(port, process, log)
        yield RedisServer(url=f"redis://127.0.0.1:{port}/0")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    external = os.environ.get(REDIS_ENV)
    if external:
        yield RedisServer(url=external)
        return
    executable = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None)
    if executable is None:
        unavailable("Redis (redis-server)", REDIS_ENV)
    with run_redis(executable) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis with database 0 emptied before the test."""
    import redis  # noqa: PLC0415 - only the Redis tests need the client loaded

    # The sync client: this fixture is also requested from async fixtures, inside a running loop.
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url
