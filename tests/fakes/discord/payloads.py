"""JSON builders: the fake's model objects rendered the way Discord's API v10 renders them.

Field sets follow what discord.py 2.7 reads (``discord/types/*.py``); snowflakes and permission
bitfields are strings on the wire, as on Discord.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .model import (
    VOICE_CHANNEL,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    VoiceState,
)

Json = dict[str, Any]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def user(u: FakeUser) -> Json:
    return {
        "id": str(u.id), "username": u.username, "discriminator": "0", "global_name": u.global_name,
        "avatar": u.avatar, "bot": u.bot, "system": False, "public_flags": 0,
    }


def member(m: FakeMember, *, with_user: bool = True, permissions: int | None = None) -> Json:
    data: Json = {
        "roles": [str(r) for r in m.roles], "nick": m.nick, "avatar": None, "banner": None,
        "joined_at": m.joined_at, "premium_since": None, "deaf": m.deaf, "mute": m.mute,
        "flags": 0, "pending": False, "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user(m.user)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def role(r: FakeRole) -> Json:
    return {
        "id": str(r.id), "name": r.name, "permissions": str(r.permissions), "position": r.position,
        "color": 0, "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False, "managed": r.managed, "mentionable": False, "icon": None, "unicode_emoji": None,
        "flags": 0,
    }


def channel(c: FakeChannel, *, permissions: int | None = None) -> Json:
    data: Json = {
        "id": str(c.id), "guild_id": str(c.guild_id), "name": c.name, "type": c.type, "position": c.position,
        "parent_id": None if c.parent_id is None else str(c.parent_id), "nsfw": False, "flags": 0,
        "permission_overwrites": [
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in c.overwrites
        ],
    }
    if c.type == VOICE_CHANNEL:
        data.update(bitrate=c.bitrate, user_limit=c.user_limit, rtc_region=None, video_quality_mode=1,
                    last_message_id=None, rate_limit_per_user=0)
    else:
        data.update(topic=None, last_message_id=None, rate_limit_per_user=0)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def voice_state(guild: FakeGuild, state: VoiceState) -> Json:
    data: Json = {
        "guild_id": str(guild.id), "user_id": str(state.user_id),
        "channel_id": None if state.channel_id is None else str(state.channel_id),
        "session_id": state.session_id, "deaf": state.deaf, "mute": state.mute,
        "self_deaf": state.self_deaf, "self_mute": state.self_mute, "self_stream": False,
        "self_video": False, "suppress": state.suppress, "request_to_speak_timestamp": None,
    }
    if state.user_id in guild.members:
        data["member"] = member(guild.members[state.user_id])
    return data


def guild_create(guild: FakeGuild, *, include_members: set[int] | None = None) -> Json:
    """GUILD_CREATE for ``guild``; ``include_members`` limits the member list (no members intent)."""
    members = [m for uid, m in guild.members.items() if include_members is None or uid in include_members]
    states = [voice_state(guild, s) for s in guild.voice_states.values() if s.channel_id is not None]
    for state in states:
        state.pop("guild_id")  # Discord omits it inside GUILD_CREATE
        state.pop("member", None)
    return {
        "id": str(guild.id), "name": guild.name, "icon": None, "splash": None, "discovery_splash": None,
        "owner_id": str(guild.owner_id), "afk_channel_id": None, "afk_timeout": 300,
        "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
        "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0, "premium_subscription_count": 0,
        "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
        "public_updates_channel_id": None, "safety_alerts_channel_id": None, "vanity_url_code": None,
        "description": None, "banner": None, "preferred_locale": guild.locale, "features": [],
        "max_members": 500000, "max_video_channel_users": 25, "premium_progress_bar_enabled": False,
        "application_id": None, "unavailable": False, "large": False, "lazy": True,
        "joined_at": "2024-01-01T00:00:00+00:00",
        # member_count == len(members) marks the guild "chunked", so discord.py skips op 8 at startup
        # whenever the whole member list was sent.
        "member_count": len(members) if include_members is not None else len(guild.members),
        "roles": [role(r) for r in guild.roles.values()],
        "channels": [_guild_create_channel(c) for c in guild.channels.values()],
        "members": [member(m) for m in members],
        "voice_states": states, "presences": [], "emojis": [], "stickers": [], "threads": [],
        "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
    }


def _guild_create_channel(c: FakeChannel) -> Json:
    data = channel(c)
    data.pop("guild_id")  # channels inside GUILD_CREATE carry no guild_id
    return data


def application(app_id: int, owner: FakeUser, name: str) -> Json:
    return {
        "id": str(app_id), "name": name, "icon": None, "description": "", "rpc_origins": [],
        "bot_public": True, "bot_require_code_grant": False, "owner": user(owner), "summary": "",
        "verify_key": "0" * 64, "team": None, "flags": 0, "tags": [], "install_params": None,
        "custom_install_url": None, "role_connections_verification_url": None,
        "approximate_guild_count": 1, "interactions_endpoint_url": None, "redirect_uris": [],
    }


def attachment(*, id: int, filename: str, size: int, url: str, content_type: str | None,
               description: str | None = None) -> Json:
    data: Json = {"id": str(id), "filename": filename, "size": size, "url": url, "proxy_url": url,
                  "content_type": content_type, "ephemeral": False}
    if description is not None:
        data["description"] = description
    return data


def message(
    *, id: int, channel_id: int, guild_id: int | None, author: FakeUser, content: str = "",
    embeds: list[Json] | None = None, attachments: list[Json] | None = None,
    components: list[Json] | None = None, flags: int = 0, type: int = 0,
    webhook_id: int | None = None, application_id: int | None = None,
    interaction_metadata: Json | None = None, timestamp: str | None = None,
) -> Json:
    data: Json = {
        "id": str(id), "channel_id": str(channel_id), "author": user(author), "content": content,
        "timestamp": timestamp or now_iso(), "edited_timestamp": None, "tts": False,
        "mention_everyone": False, "mentions": [], "mention_roles": [], "mention_channels": [],
        "attachments": attachments or [], "embeds": embeds or [], "reactions": [], "pinned": False,
        "type": type, "flags": flags, "components": components or [], "nonce": None,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
    if application_id is not None:
        data["application_id"] = str(application_id)
    if interaction_metadata is not None:
        data["interaction_metadata"] = interaction_metadata
    return data
