"""Shard groups: which of the bot's gateway shards this process runs (SHARD_COUNT / SHARD_IDS).

Discord splits a bot's guilds over ``shard_count`` gateway connections; guild ``g`` lives on
shard ``(g >> 22) % shard_count`` (developer docs, Gateway > Sharding). Voxcord always runs
``discord.ext.commands.AutoShardedBot``, which opens one connection per shard in ``shard_ids``:

- nothing set: one process, as many shards as Discord recommends (GET /gateway/bot), usually 1;
- ``SHARD_COUNT=N``: one process running all N shards;
- ``SHARD_COUNT=N SHARD_IDS=0,1``: one process of several, running shards 0 and 1 of N. Start
  one process per group, every process with the same SHARD_COUNT and together covering 0..N-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from discord.http import HTTPClient

MAX_SHARD_IDS_SPAN = 16_384  # a typo such as 0-99999999 must not allocate a huge tuple


class ShardSettings(Protocol):
    """The two settings a shard plan is made of (``bot.config.Settings`` has them).

    A Protocol rather than an import: config parses SHARD_IDS with this module, and the two
    modules must not import each other.
    """

    @property
    def shard_count(self) -> int | None: ...

    @property
    def shard_ids(self) -> tuple[int, ...] | None: ...


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that receives a guild's events (Discord's formula)."""
    return (guild_id >> 22) % shard_count


def parse_shard_ids(value: str) -> tuple[int, ...]:
    """``"0,1"``, ``"4-7"`` or ``"0, 2, 5-6"`` -> sorted shard ids; ValueError says what is wrong."""
    ids: set[int] = set()
    for raw_part in value.split(","):
        part = raw_part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise ValueError(f"{part!r} is not a shard id or a range like 0-3") from None
        if low < 0 or high < low:
            raise ValueError(f"{part!r} is not a valid shard range")
        if high - low >= MAX_SHARD_IDS_SPAN:
            raise ValueError(f"{part!r} spans more than {MAX_SHARD_IDS_SPAN} shards")
        ids.update(range(low, high + 1))
    if not ids:
        raise ValueError("names no shard")
    return tuple(sorted(ids))


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """The shards one process runs. ``count=None``: ask Discord at login; ``ids=None``: all of them."""

    count: int | None = None
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.ids is not None and self.count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT")
        if self.ids is not None and self.count is not None and max(self.ids) >= self.count:
            raise ValueError(f"shard ids must be below SHARD_COUNT ({self.count})")

    @classmethod
    def from_settings(cls, settings: ShardSettings) -> ShardPlan:
        return cls(count=settings.shard_count, ids=settings.shard_ids)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoShardedBot``'s constructor."""
        return {"shard_count": self.count, "shard_ids": list(self.ids) if self.ids is not None else None}

    def describe(self) -> str:
        if self.count is None:
            return "shard count recommended by Discord, all shards in this process"
        if self.ids is None:
            return f"all {self.count} shard(s) in this process"
        return f"shard(s) {', '.join(map(str, self.ids))} of {self.count}"


async def recommended_shard_count(http: HTTPClient) -> int:
    """Discord's recommended shard count (GET /gateway/bot), at least 1.

    discord.py would ask this itself when ``shard_count`` is None, but it would then also take
    the gateway URL from that answer and ignore DISCORD_GATEWAY_URL (a gateway proxy, or the
    tests' fake). Asking first and fixing the count keeps the configured gateway.
    """
    shards, _url, _limits = await http.get_bot_gateway()
    return max(1, int(shards))
