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


@contextlib.contextmanager
def shared_services(processes: int) -> Iterator[dict[str, str]]:
    """The environment every bot process shares: nothing for one process; for several, a
    throwaway PostgreSQL cluster and Redis on loopback (the tests' starters, tests/services.py)
    as ``DATABASE_URL`` / ``REDIS_URL``. Their CPU is on this machine too: see ``pids``."""
    if processes == 1:
        yield {}
        return
    bin_dir = find_postgres_bin()
    redis = shutil.which("redis-server")
    if bin_dir is None or redis is None:
        raise RuntimeError("--processes > 1 needs PostgreSQL (initdb, pg_ctl) and redis-server: "
                           "apt-get install postgresql redis-server, as .ci/run does")
    with run_postgres(bin_dir) as postgres, run_redis(redis) as cache:
        yield {"DATABASE_URL": postgres.create_database(BENCH_DATABASE), "REDIS_URL": cache.url}


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
