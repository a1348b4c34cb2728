"""Several bot processes for the benchmarks: one shard group each, as docs/scaling.md deploys them.

``python -m bench.scaling --processes N`` runs N bot processes, process ``i`` with
``SHARD_COUNT=N SHARD_IDS=i``, sharing one PostgreSQL database and one Redis (the deployment
docs/scaling.md requires for several processes: shard groups are not the database's sole writer,
and rate limits and budgets must be counted once for all of them). With N = 1 nothing changes:
one process, no shard settings, SQLite, in-memory counters.

Discord (and the fake) sends guild ``g``'s events to shard ``(g >> 22) % N``; the fake's
snowflakes carry the millisecond they were made in those bits, so guilds built in a quick loop
mostly share one shard. :func:`spread_guild_ids` moves each id to the shard it is meant for.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bot.sharding import shard_of
from tests.services import find_postgres_bin, run_postgres, run_redis

BENCH_DATABASE = "voxcord_bench"
STORES = ("sqlite", "postgres")


def shard_for_guild(index: int, processes: int) -> int:
    """The shard (= process) guild number ``index`` of a run is placed on: round robin."""
    return index % processes


def spread_guild_ids(next_id: Callable[[], int], count: int, processes: int) -> list[int]:
    """``count`` fresh guild ids, guild ``i`` on shard ``i % processes`` (Discord's routing).

    Each id starts from ``next_id()`` (a snowflake) and moves on by whole milliseconds
    (``1 << 22``, which moves the shard on by one) until it lands on its shard, so ids stay
    well-formed and distinct, and each process gets ``count / processes`` guilds (± 1).
    """
    ids: list[int] = []
    for index in range(count):
        guild_id = next_id()
        want = shard_for_guild(index, processes)
        while shard_of(guild_id, processes) != want:
            guild_id += 1 << 22
        ids.append(guild_id)
    return ids


def process_env(index: int, processes: int) -> dict[str, str]:
    """The shard settings of bot process ``index`` of ``processes``; none for a single process,
    which then runs as today (no SHARD_COUNT: sole process, in-memory caches allowed)."""
    if processes == 1:
        return {}
    return {"SHARD_COUNT": str(processes), "SHARD_IDS": str(index)}


def default_store(processes: int) -> str:
    """What docs/scaling.md deploys: SQLite for one process, PostgreSQL for several."""
    return "sqlite" if processes == 1 else "postgres"


@contextlib.contextmanager
def shared_services(processes: int, store: str | None = None) -> Iterator[dict[str, str]]:
    """The environment every bot process shares, on top of the bench's SQLite file.

    One process on SQLite: nothing (the sole writer, in-memory counters: the default deployment).
    Otherwise Redis (several processes must count limits and budgets once), and with
    ``store="postgres"`` a PostgreSQL database (``"sqlite"`` with several processes: one SQLite
    file shared on one host, which docs/scaling.md advises against; measured in benchmarks.md 6).
    Throwaway servers on loopback, started as the tests start theirs (tests/services.py); their
    CPU is on this machine too (``service_pids``)."""
    store = store or default_store(processes)
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}")
    if processes == 1 and store == "sqlite":
        yield {}
        return
    redis = shutil.which("redis-server")
    bin_dir = find_postgres_bin() if store == "postgres" else None
    if redis is None or (store == "postgres" and bin_dir is None):
        raise RuntimeError("several processes need redis-server (and PostgreSQL: initdb, pg_ctl): "
                           "apt-get install postgresql redis-server, as .ci/run does")
    with contextlib.ExitStack() as servers:
        env = {"REDIS_URL": servers.enter_context(run_redis(redis)).url}
        if bin_dir is not None:
            env["DATABASE_URL"] = servers.enter_context(run_postgres(bin_dir)).create_database(BENCH_DATABASE)
        yield env


def service_pids(env: dict[str, str]) -> list[int]:
    """The PostgreSQL (server and its backends) and Redis processes of ``env``'s URLs, found by
    their port on the command line: their CPU is part of what several processes cost."""
    ports = {str(urlsplit(url).port) for key in ("DATABASE_URL", "REDIS_URL") if (url := env.get(key))}
    servers, parents = [], {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            name = Path(words[0]).name if words else ""
            if (name == "postgres" and any(words[i] == "-p" and words[i + 1] in ports for i in range(len(words) - 1))
                    or name == "redis-server" and any(w.rsplit(":", 1)[-1] in ports for w in words[1:2])):
                servers.append(int(entry.name))
    return servers + [pid for pid, parent in parents.items() if parent in servers]
