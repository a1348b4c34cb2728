"""The fake Discord's world: users, guilds, roles, channels, members and voice states.

Tests build this state with the ``add_*`` helpers; ``payloads`` turns it into the JSON Discord
would send. Permissions are computed the way Discord documents it ("Permission Overwrites" in
the developer docs, also what ``discord.Member.permissions_in`` implements), so a test can take
Manage Server away from a member or Connect/Speak away from the bot in one voice channel and
see that in the interaction's ``member.permissions`` / ``app_permissions``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import discord

# Permission bits used by the fake and handy for tests (values from the Discord docs).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
CONNECT = 1 << 20
SPEAK = 1 << 21
USE_VAD = 1 << 25
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
SEND_VOICE_MESSAGES = 1 << 46
# Every bit discord.py knows, so ``Permissions.all() == member.guild_permissions`` holds for owners.
ALL_PERMISSIONS = discord.Permissions.all().value

# Roughly what a fresh guild's @everyone role gets: talk, read, join voice, use commands.
DEFAULT_EVERYONE = (
    CREATE_INSTANT_INVITE | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
    | READ_MESSAGE_HISTORY | CONNECT | SPEAK | USE_VAD | CHANGE_NICKNAME | USE_APPLICATION_COMMANDS
)

TEXT_CHANNEL = 0
VOICE_CHANNEL = 2
CATEGORY_CHANNEL = 4
STAGE_CHANNEL = 13

# Discord epoch (2015-01-01T00:00:00Z) in milliseconds; snowflakes carry a timestamp from it.
_DISCORD_EPOCH_MS = 1_420_070_400_000


class Snowflakes:
    """Issues increasing, well-formed snowflakes so ``discord.Object.created_at`` stays sane."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> int:
        ms = int(time.time() * 1000) - _DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)


@dataclass(slots=True)
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None

    @property
    def display_name(self) -> str:
        return self.global_name or self.username


@dataclass(slots=True)
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False


@dataclass(frozen=True, slots=True)
class Overwrite:
    """A channel permission overwrite; ``type`` 0 targets a role, 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    @classmethod
    def role(cls, role_id: int, *, allow: int = 0, deny: int = 0) -> Overwrite:
        return cls(id=role_id, type=0, allow=allow, deny=deny)

    @classmethod
    def member(cls, user_id: int, *, allow: int = 0, deny: int = 0) -> Overwrite:
        return cls(id=user_id, type=1, allow=allow, deny=deny)


@dataclass(slots=True)
class FakeChannel:
    id: int
    guild_id: int
    name: str
    type: int
    position: int = 0
    overwrites: list[Overwrite] = field(default_factory=list)
    parent_id: int | None = None
    bitrate: int = 64000
    user_limit: int = 0


@dataclass(slots=True)
class FakeMember:
    user: FakeUser
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = "2024-01-01T00:00:00+00:00"
    deaf: bool = False
    mute: bool = False

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def display_name(self) -> str:
        return self.nick or self.user.display_name


@dataclass(slots=True)
class VoiceState:
    user_id: int
    channel_id: int | None
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False
    mute: bool = False
    deaf: bool = False
    suppress: bool = False


class FakeGuild:
    """One guild; the bot is always a member (Discord only sends guilds the bot is in)."""

    def __init__(
        self, *, id: int, name: str, owner_id: int, snowflakes: Snowflakes, locale: str = "en-US",
        attachment_size_limit: int = 10 * 1024 * 1024,
    ) -> None:
        self.id = id
        self.name = name
        self.owner_id = owner_id
        self.locale = locale
        self.attachment_size_limit = attachment_size_limit
        self._snowflakes = snowflakes
        # @everyone shares the guild's id, as on Discord.
        everyone = FakeRole(id=id, name="@everyone", permissions=DEFAULT_EVERYONE)
        self.roles: dict[int, FakeRole] = {id: everyone}
        self.channels: dict[int, FakeChannel] = {}
        self.members: dict[int, FakeMember] = {}
        self.voice_states: dict[int, VoiceState] = {}

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]

    def add_role(self, name: str, permissions: int = 0, *, id: int | None = None) -> FakeRole:
        role = FakeRole(id=id or self._snowflakes.next(), name=name, permissions=permissions,
                        position=len(self.roles))
        self.roles[role.id] = role
        return role

    def add_member(
        self, user: FakeUser | int, name: str | None = None, *, roles: tuple[FakeRole | int, ...] = (),
        nick: str | None = None, global_name: str | None = None, bot: bool = False,
    ) -> FakeMember:
        """Add (or replace) a member; ``user`` may be an id, then ``name`` is its username."""
        if isinstance(user, int):
            user = FakeUser(id=user, username=name or f"user{user}", global_name=global_name, bot=bot)
        role_ids = [r.id if isinstance(r, FakeRole) else r for r in roles]
        member = FakeMember(user=user, roles=role_ids, nick=nick)
        self.members[user.id] = member
        return member

    def member(self, user_id: int) -> FakeMember:
        return self.members[user_id]

    def add_text_channel(
        self, name: str, *, id: int | None = None, overwrites: tuple[Overwrite, ...] = (),
        parent_id: int | None = None,
    ) -> FakeChannel:
        return self._add_channel(name, TEXT_CHANNEL, id, overwrites, parent_id)

    def add_voice_channel(
        self, name: str, *, id: int | None = None, overwrites: tuple[Overwrite, ...] = (),
        parent_id: int | None = None, user_limit: int = 0,
    ) -> FakeChannel:
        channel = self._add_channel(name, VOICE_CHANNEL, id, overwrites, parent_id)
        channel.user_limit = user_limit
        return channel

    def add_category(self, name: str, *, id: int | None = None,
                     overwrites: tuple[Overwrite, ...] = ()) -> FakeChannel:
        return self._add_channel(name, CATEGORY_CHANNEL, id, overwrites, None)

    def _add_channel(
        self, name: str, type_: int, id: int | None, overwrites: tuple[Overwrite, ...], parent_id: int | None,
    ) -> FakeChannel:
        channel = FakeChannel(id=id or self._snowflakes.next(), guild_id=self.id, name=name, type=type_,
                              position=len(self.channels), overwrites=list(overwrites), parent_id=parent_id)
        self.channels[channel.id] = channel
        return channel

    def first_text_channel(self) -> FakeChannel:
        for channel in self.channels.values():
            if channel.type == TEXT_CHANNEL:
                return channel
        raise LookupError(f"guild {self.id} has no text channel")

    def base_permissions(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members[user_id]
        perms = self.everyone.permissions
        for role_id in member.roles:
            if role_id in self.roles:
                perms |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def permissions_for(self, user_id: int, channel_id: int | None = None) -> int:
        """Guild-level permissions, or channel-level ones after overwrites when a channel is given."""
        perms = self.base_permissions(user_id)
        if channel_id is None or perms == ALL_PERMISSIONS:
            return perms
        channel = self.channels[channel_id]
        member = self.members[user_id]
        by_target = {(o.type, o.id): o for o in channel.overwrites}
        everyone = by_target.get((0, self.id))
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.roles:
            overwrite = by_target.get((0, role_id))
            if overwrite is not None:
                allow |= overwrite.allow
                deny |= overwrite.deny
        perms = (perms & ~deny) | allow
        own = by_target.get((1, user_id))
        if own is not None:
            perms = (perms & ~own.deny) | own.allow
        # Discord treats a channel you cannot see as one where you have no permissions at all.
        if not perms & VIEW_CHANNEL:
            return 0
        return perms
