"""INTERACTION_CREATE payloads: slash commands (type 2) and component clicks (type 3).

Option types come from the command schema the bot synced (PUT .../commands) when there is one,
otherwise from the Python value: ``str`` 3, ``int`` 4, ``bool`` 5, ``FakeUser``/``FakeMember`` 6,
``FakeChannel`` 7, ``FakeRole`` 8, ``float`` 10, ``Attachment`` 11.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import payloads
from .model import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser

if TYPE_CHECKING:
    from .server import FakeDiscord

Json = dict[str, Any]

SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE = 1, 2, 3, 4, 5, 6, 7, 8
MENTIONABLE, NUMBER, ATTACHMENT = 9, 10, 11
APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
BUTTON = 2


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a user attaches to a slash command option.

    ``size`` is what Discord claims in the payload; leave it ``None`` for ``len(data)``, or set it
    to test the bot's size checks without building a huge file.
    """

    filename: str
    data: bytes
    content_type: str | None = "application/octet-stream"
    size: int | None = None
    id: int | None = None


def _find_command(fake: FakeDiscord, guild_id: int, name: str) -> tuple[Json | None, int | None]:
    """The synced schema of ``name`` and the guild it was registered in (None when global)."""
    for scope in (guild_id, None):
        for command in fake.commands.get(scope, []):
            if command.get("name") == name and command.get("type", 1) == 1:
                return command, scope
    return None, None


def _walk_schema(schema: Json | None, names: list[str]) -> dict[str, Json]:
    node = schema
    for name in names:
        if node is None:
            return {}
        node = next((o for o in node.get("options", []) if o.get("name") == name), None)
    return {} if node is None else {o["name"]: o for o in node.get("options", [])}


def _infer_type(value: object) -> int:
    if isinstance(value, Attachment):
        return ATTACHMENT
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, FakeUser | FakeMember):
        return USER
    if isinstance(value, FakeChannel):
        return CHANNEL
    if isinstance(value, FakeRole):
        return ROLE
    return STRING


def _ref_id(value: object) -> int:
    if isinstance(value, FakeUser | FakeMember | FakeChannel | FakeRole):
        return value.id
    return int(value)  # type: ignore[call-overload]  # plain ids are allowed when the schema types them


class _Resolver:
    """Collects ``data.resolved`` while options are encoded."""

    def __init__(self, fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel, user_id: int) -> None:
        self._fake, self._guild, self._channel = fake, guild, channel
        self._member_id = user_id  # resolved channels carry the invoking member's permissions
        self.resolved: Json = {}

    def _bucket(self, name: str) -> Json:
        return self.resolved.setdefault(name, {})

    def encode(self, option_type: int, value: object) -> object:
        if option_type == ATTACHMENT:
            assert isinstance(value, Attachment), "attachment options take tests.fakes.discord.Attachment"
            return self._attachment(value)
        if option_type in (USER, MENTIONABLE) and (option_type == USER or not self._is_role(value)):
            return self._user(_ref_id(value))
        if option_type in (ROLE, MENTIONABLE):
            role = self._guild.roles[_ref_id(value)]
            self._bucket("roles")[str(role.id)] = payloads.role(role)
            return str(role.id)
        if option_type == CHANNEL:
            channel = self._guild.channels[_ref_id(value)]
            perms = self._guild.permissions_for(self._member_id, channel.id)
            self._bucket("channels")[str(channel.id)] = payloads.channel(channel, permissions=perms)
            return str(channel.id)
        return value

    def _is_role(self, value: object) -> bool:
        return isinstance(value, FakeRole) or (isinstance(value, int) and value in self._guild.roles)

    def _user(self, user_id: int) -> str:
        member = self._guild.members.get(user_id)
        user = member.user if member is not None else self._fake.users[user_id]
        self._bucket("users")[str(user_id)] = payloads.user(user)
        if member is not None:
            perms = self._guild.permissions_for(user_id, self._channel.id)
            members = self._bucket("members")
            members[str(user_id)] = payloads.member(member, with_user=False, permissions=perms)
        return str(user_id)

    def _attachment(self, value: Attachment) -> str:
        attachment_id = value.id or self._fake.snowflakes.next()
        url = self._fake.cdn.put(self._channel.id, attachment_id, value.filename, value.data,
                                 value.content_type)
        size = len(value.data) if value.size is None else value.size
        self._bucket("attachments")[str(attachment_id)] = payloads.attachment(
            id=attachment_id, filename=value.filename, size=size, url=url, content_type=value.content_type,
        )
        return str(attachment_id)


def envelope(fake: FakeDiscord, *, type: int, guild: FakeGuild, channel: FakeChannel, user_id: int,
             data: Json, locale: str = "en-US") -> Json:
    """The fields every guild interaction carries, with permissions computed for ``channel``."""
    member = guild.members[user_id]
    bot_id = fake.bot_user.id
    return {
        "id": str(fake.snowflakes.next()), "application_id": str(fake.application_id), "type": type,
        "token": "itok_" + secrets.token_urlsafe(24), "version": 1, "data": data,
        "guild_id": str(guild.id), "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
        "channel_id": str(channel.id),
        "channel": payloads.channel(channel, permissions=guild.permissions_for(user_id, channel.id)),
        "member": payloads.member(member, permissions=guild.permissions_for(user_id, channel.id)),
        "app_permissions": str(guild.permissions_for(bot_id, channel.id) if bot_id in guild.members else 0),
        "locale": locale, "guild_locale": guild.locale, "entitlements": [], "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild.id)}, "context": 0,
        "attachment_size_limit": guild.attachment_size_limit,
    }


def command_interaction(fake: FakeDiscord, *, guild: FakeGuild, channel: FakeChannel, user_id: int,
                        command: str, options: dict[str, object], locale: str = "en-US",
                        guild_command: bool | None = None) -> Json:
    path = command.split()
    if not 1 <= len(path) <= 3:
        raise ValueError(f"command path {command!r} must be 'name', 'name sub' or 'name group sub'")
    schema, scope = _find_command(fake, guild.id, path[0])
    leaf_schema = _walk_schema(schema, path[1:])
    resolver = _Resolver(fake, guild, channel, user_id)
    leaf: list[Json] = []
    for name, value in options.items():
        option_type = leaf_schema[name]["type"] if name in leaf_schema else _infer_type(value)
        leaf.append({"name": name, "type": option_type, "value": resolver.encode(option_type, value)})
    nested: list[Json] = leaf
    if len(path) == 3:
        nested = [{"name": path[1], "type": SUB_COMMAND_GROUP,
                   "options": [{"name": path[2], "type": SUB_COMMAND, "options": leaf}]}]
    elif len(path) == 2:
        nested = [{"name": path[1], "type": SUB_COMMAND, "options": leaf}]
    data: Json = {"id": str(schema["id"]) if schema else str(fake.snowflakes.next()), "name": path[0],
                  "type": 1, "options": nested}
    if resolver.resolved:
        data["resolved"] = resolver.resolved
    # discord.py looks guild commands up only when data.guild_id is present.
    if guild_command or (guild_command is None and scope is not None):
        data["guild_id"] = str(guild.id)
    return envelope(fake, type=APPLICATION_COMMAND, guild=guild, channel=channel, user_id=user_id,
                    data=data, locale=locale)


def component_interaction(fake: FakeDiscord, *, guild: FakeGuild, channel: FakeChannel, user_id: int,
                          message: Json, custom_id: str, component_type: int = BUTTON,
                          values: list[str] | None = None, locale: str = "en-US") -> Json:
    data: Json = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = values
    payload = envelope(fake, type=MESSAGE_COMPONENT, guild=guild, channel=channel, user_id=user_id,
                       data=data, locale=locale)
    payload["message"] = message
    return payload
