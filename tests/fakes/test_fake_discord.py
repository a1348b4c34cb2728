"""Self-test: a plain discord.Client + CommandTree against the loopback fake Discord."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes import tls
from tests.fakes.discord import Attachment, FakeDiscord, FakeGuild, Overwrite, VoiceState, fixtures
from tests.fakes.discord.fixtures import running_client, trusting_connector
from tests.fakes.discord.model import CONNECT, MANAGE_GUILD, SPEAK

# Pytest finds fixtures by module attribute name.
tls_certificates = fixtures.tls_certificates
fake_discord = fixtures.fake_discord

ALICE, BOB = 222_000_000_000_000_002, 333_000_000_000_000_003


@dataclass
class World:
    fake: FakeDiscord
    guild: FakeGuild
    text_id: int
    voice_id: int
    mute_voice_id: int


@dataclass
class Seen:
    """What the client's command callbacks observed."""

    interactions: dict[str, discord.Interaction] = field(default_factory=dict)
    clip: bytes | None = None
    pressed: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def world(fake_discord: FakeDiscord) -> World:
    guild = fake_discord.add_guild("Voxcord test")
    admins = guild.add_role("admins", MANAGE_GUILD)
    guild.add_member(ALICE, "alice", roles=(admins,), nick="Alice N")
    guild.add_member(BOB, "bob", global_name="Bobby")
    text = guild.add_text_channel("general")
    voice = guild.add_voice_channel("Lounge")
    # The bot may join but not talk here.
    mute_voice = guild.add_voice_channel(
        "Quiet", overwrites=(Overwrite.member(fake_discord.bot_user.id, deny=SPEAK),)
    )
    guild.voice_states[ALICE] = VoiceState(user_id=ALICE, channel_id=voice.id, session_id="alice-session")
    return World(fake_discord, guild, text.id, voice.id, mute_voice.id)


class PressView(discord.ui.View):
    def __init__(self, seen: Seen) -> None:
        super().__init__(timeout=None)
        self._seen = seen

    @discord.ui.button(label="Press", custom_id="press")
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button[PressView]) -> None:
        self._seen.interactions["press"] = interaction
        await interaction.response.edit_message(content="pressed", view=None)
        self._seen.pressed.set()


def build_client(certs: tls.TestCertificates, seen: Seen) -> discord.Client:
    intents = discord.Intents.default()
    intents.members = True
    # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before on_ready;
    # the fake sends them all right behind READY, so the 2 s default only slows the suite down.
    client = discord.Client(intents=intents, connector=trusting_connector(certs), guild_ready_timeout=0.5)
    tree = app_commands.CommandTree(client)
    client.tree = tree  # type: ignore[attr-defined]

    voice = app_commands.Group(name="voice", description="Voice settings")
    clip = app_commands.Group(name="clip", description="Reference clip", parent=voice)

    @clip.command(name="set", description="Upload a reference clip")
    async def clip_set(interaction: discord.Interaction, clip: discord.Attachment) -> None:
        seen.interactions["clip"] = interaction
        seen.clip = await clip.read()
        summary = f"{clip.filename}: {len(seen.clip)} bytes (claimed {clip.size})"
        await interaction.response.send_message(summary)

    tree.add_command(voice)

    @tree.command(name="ping", description="Plain reply")
    async def ping(interaction: discord.Interaction) -> None:
        seen.interactions["ping"] = interaction
        await interaction.response.send_message("pong")

    @tree.command(name="slow", description="Deferred reply with a file")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("done", file=discord.File(io.BytesIO(b"RIFFdata"), "reply.wav"))

    @tree.command(name="secret", description="Ephemeral reply")
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("hush", ephemeral=True)

    @tree.command(name="buttons", description="A message with a button")
    async def buttons(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press it", view=PressView(seen))

    return client


@pytest.fixture
async def connected(
    world: World, tls_certificates: tls.TestCertificates
) -> AsyncIterator[tuple[discord.Client, Seen]]:
    seen = Seen()
    client = build_client(tls_certificates, seen)
    async with running_client(world.fake, client):
        yield client, seen


async def test_login_ready_builds_guild_with_members_channels_permissions(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    client, _ = connected
    assert client.user is not None and client.user.id == world.fake.bot_user.id
    guild = client.get_guild(world.guild.id)
    assert guild is not None and guild.name == "Voxcord test"
    alice, bob = guild.get_member(ALICE), guild.get_member(BOB)
    assert alice is not None and alice.display_name == "Alice N"
    assert bob is not None and bob.display_name == "Bobby"
    assert alice.guild_permissions.manage_guild and not bob.guild_permissions.manage_guild
    voice = guild.get_channel(world.voice_id)
    assert isinstance(voice, discord.VoiceChannel)
    assert [m.id for m in voice.members] == [ALICE]
    quiet = guild.get_channel(world.mute_voice_id)
    assert isinstance(quiet, discord.VoiceChannel)
    me_in_quiet = quiet.permissions_for(guild.me)
    assert me_in_quiet.connect and not me_in_quiet.speak
    identify = world.fake.gateway.identifies[0]
    assert identify["intents"] == client.intents.value
    assert identify["token"] == "fake-token" and "shard" not in identify  # a plain Client is unsharded


async def test_slash_command_with_group_and_attachment(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    _, seen = connected
    clip = Attachment("voice.ogg", b"OggS-fake-clip", content_type="audio/ogg", size=25 * 1024 * 1024)
    record = await world.fake.invoke(guild_id=world.guild.id, user_id=BOB, command="voice clip set",
                                     options={"clip": clip}, channel_id=world.text_id)
    reply = await record.wait_reply(timeout=10)
    assert seen.clip == b"OggS-fake-clip"
    assert reply.content == f"voice.ogg: 14 bytes (claimed {25 * 1024 * 1024})"
    assert not record.deferred and not record.ephemeral
    assert record.first_ack_after is not None and record.first_ack_after >= 0
    data = record.payload["data"]
    assert data["name"] == "voice"
    assert data["options"][0]["type"] == 2 and data["options"][0]["options"][0]["type"] == 1
    assert world.fake.cdn.downloads  # the client fetched the bytes through the fake CDN
    interaction = seen.interactions["clip"]
    assert not interaction.permissions.manage_guild
    assert interaction.app_permissions.send_messages


async def test_member_permissions_and_app_permissions_follow_overwrites(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    _, seen = connected
    record = await world.fake.invoke(guild_id=world.guild.id, user_id=ALICE, command="ping",
                                     channel_id=world.mute_voice_id)
    assert (await record.wait_reply()).content == "pong"
    interaction = seen.interactions["ping"]
    assert interaction.permissions.manage_guild
    assert interaction.app_permissions.connect and not interaction.app_permissions.speak
    assert int(record.payload["app_permissions"]) & CONNECT


async def test_deferred_reply_with_file_and_ephemeral_reply(
    world: World, connected: tuple[discord.Client, Seen], tls_certificates: tls.TestCertificates
) -> None:
    fake = world.fake
    slow = await fake.invoke(guild_id=world.guild.id, user_id=ALICE, command="slow")
    reply = await slow.wait_reply()
    assert slow.deferred and not slow.ephemeral
    assert slow.callbacks[0].callback_type == 5
    assert reply.content == "done" and reply.answer.kind == "followup"
    assert [(f.filename, f.data) for f in reply.files] == [("reply.wav", b"RIFFdata")]
    async with (
        aiohttp.ClientSession(connector=trusting_connector(tls_certificates)) as session,
        session.get(reply.attachments[0]["url"]) as response,
    ):
        assert await response.read() == b"RIFFdata"

    secret = await fake.invoke(guild_id=world.guild.id, user_id=BOB, command="secret")
    hushed = await secret.wait_reply()
    assert hushed.ephemeral and secret.ephemeral and hushed.content == "hush"


async def test_button_click_arrives_as_component_interaction(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    _, seen = connected
    fake = world.fake
    record = await fake.invoke(guild_id=world.guild.id, user_id=ALICE, command="buttons")
    reply = await record.wait_reply()
    assert reply.components[0]["components"][0]["custom_id"] == "press"
    click = await fake.click(record, "press", user_id=BOB)
    updated = await click.wait_reply()
    assert updated.content == "pressed" and updated.components == []
    assert click.callbacks[0].callback_type == 7
    interaction = seen.interactions["press"]
    assert interaction.type is discord.InteractionType.component
    assert interaction.data is not None and interaction.data.get("custom_id") == "press"
    assert interaction.user.id == BOB


class StubVoiceServer:
    endpoint = "127.0.0.1:9"

    def __init__(self) -> None:
        self.opened: list[dict[str, object]] = []
        self.closed: list[int] = []

    def open_session(self, *, guild_id: int, channel_id: int, user_id: int, session_id: str) -> str:
        self.opened.append({"guild_id": guild_id, "channel_id": channel_id, "user_id": user_id,
                            "session_id": session_id})
        return "voice-token"

    def close_session(self, guild_id: int) -> None:
        self.closed.append(guild_id)


async def test_op4_dispatches_voice_state_and_voice_server(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    client, _ = connected
    fake = world.fake
    stub = StubVoiceServer()
    fake.attach_voice_server(stub)
    channel = client.get_channel(world.voice_id)
    assert isinstance(channel, discord.VoiceChannel)
    # Only the main-gateway half of a join is under test: stop before dialling the voice endpoint.
    connect = asyncio.create_task(channel.connect(timeout=30, reconnect=False))
    try:
        await fake.gateway.wait_for(lambda: bool(fake.voice.server_updates))
    finally:
        connect.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connect
    op4 = fake.voice_state_updates[0]
    assert int(op4["guild_id"]) == world.guild.id and int(op4["channel_id"]) == world.voice_id
    session = fake.gateway.open_sessions[0]
    assert stub.opened == [{"guild_id": world.guild.id, "channel_id": world.voice_id,
                            "user_id": fake.bot_user.id, "session_id": session.session_id}]
    sent = [(f["t"], f["d"]) for f in session.log if f["t"] in ("VOICE_STATE_UPDATE", "VOICE_SERVER_UPDATE")]
    assert sent[0][0] == "VOICE_STATE_UPDATE" and sent[0][1]["session_id"] == session.session_id
    assert sent[1] == ("VOICE_SERVER_UPDATE", {"token": "voice-token", "guild_id": str(world.guild.id),
                                               "endpoint": "127.0.0.1:9"})
    assert world.guild.voice_states[fake.bot_user.id].channel_id == world.voice_id


async def test_leaving_voice_closes_the_voice_session(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    client, _ = connected
    fake = world.fake
    stub = StubVoiceServer()
    fake.attach_voice_server(stub)
    guild = client.get_guild(world.guild.id)
    assert guild is not None
    await guild.change_voice_state(channel=guild.get_channel(world.voice_id))
    await guild.change_voice_state(channel=None)
    await fake.gateway.wait_for(lambda: len(fake.voice_state_updates) == 2)
    assert fake.voice_state_updates[1]["channel_id"] is None
    assert stub.closed == [world.guild.id]
    assert fake.bot_user.id not in world.guild.voice_states


async def test_user_voice_state_reaches_client(world: World, connected: tuple[discord.Client, Seen]) -> None:
    client, _ = connected
    moved = asyncio.Event()

    @client.event
    async def on_voice_state_update(member: discord.Member, before: discord.VoiceState,
                                    after: discord.VoiceState) -> None:
        if member.id == BOB and after.channel is not None:
            moved.set()

    await world.fake.set_voice_state(world.guild.id, BOB, world.voice_id)
    await asyncio.wait_for(moved.wait(), 10)
    channel = client.get_channel(world.voice_id)
    assert isinstance(channel, discord.VoiceChannel)
    assert {m.id for m in channel.members} == {ALICE, BOB}


async def test_command_sync_and_unknown_route(world: World, connected: tuple[discord.Client, Seen]) -> None:
    client, _ = connected
    synced = await client.tree.sync()  # type: ignore[attr-defined]
    assert {c.name for c in synced} == {"voice", "ping", "slow", "secret", "buttons"}
    assert all(c.id for c in synced)
    stored = {c["name"]: c for c in world.fake.commands[None]}
    assert stored["voice"]["options"][0]["type"] == 2
    assert world.fake.unhandled == []
    with pytest.raises(discord.NotFound):
        await client.fetch_invite("nope")
    assert [(r.method, r.path) for r in world.fake.unhandled] == [("GET", "/api/v10/invites/nope")]


async def test_reconnect_resumes_and_replays(world: World, connected: tuple[discord.Client, Seen]) -> None:
    client, _ = connected
    fake = world.fake
    await fake.request_reconnect()
    await fake.gateway.wait_for(lambda: any(c.resumed for c in fake.gateway.connections))
    await fake.drop_gateway()
    await fake.gateway.wait_for(lambda: sum(c.resumed for c in fake.gateway.connections) == 2
                                and bool(fake.gateway.open_sessions))
    assert len(fake.gateway.identifies) == 1
    record = await fake.invoke(guild_id=world.guild.id, user_id=ALICE, command="ping")
    assert (await record.wait_reply()).content == "pong"
    assert client.get_guild(world.guild.id) is not None


async def test_second_callback_is_rejected(world: World, connected: tuple[discord.Client, Seen]) -> None:
    client, _ = connected
    errors: list[BaseException] = []

    @client.tree.command(name="twice", description="Answers twice")  # type: ignore[attr-defined]
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("one")
        try:
            await interaction.response.send_message("two")
        except discord.InteractionResponded as exc:
            errors.append(exc)
        await interaction.followup.send("three")

    record = await world.fake.invoke(guild_id=world.guild.id, user_id=ALICE, command="twice")
    await record.wait_for(lambda r: len(r.followups) == 1)
    assert len(record.callbacks) == 1 and len(errors) == 1


fake_discord_env = fixtures.fake_discord_env


async def test_operator_style_trust_through_ssl_cert_file(fake_discord_env: dict[str, str]) -> None:
    # What the bot does at startup: a default context, which reads SSL_CERT_FILE when created.
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(fake_discord_env["DISCORD_API_BASE_URL"] + "/users/@me",
                    headers={"Authorization": "Bot any"}) as response,
    ):
        assert response.status == 200
        assert (await response.json())["bot"] is True


async def test_wrong_token_fails_login(tls_certificates: tls.TestCertificates) -> None:
    async with FakeDiscord(tls_certificates, token="right") as fake:
        connector = trusting_connector(tls_certificates)
        client = discord.Client(intents=discord.Intents.default(), connector=connector)
        with pytest.raises(discord.LoginFailure):
            async with running_client(fake, client, token="wrong"):
                pass
        assert fake.gateway.identifies == []


async def test_late_first_response_is_unknown_interaction(
    world: World, connected: tuple[discord.Client, Seen]
) -> None:
    client, _ = connected
    now = [0.0]
    world.fake.interactions.clock = lambda: now[0]  # virtual time: no sleeping past the 3 s deadline
    release = asyncio.Event()
    failures: list[discord.NotFound] = []
    answered = asyncio.Event()

    @client.tree.command(name="late", description="Answers after the deadline")  # type: ignore[attr-defined]
    async def late(interaction: discord.Interaction) -> None:
        await release.wait()
        try:
            await interaction.response.send_message("too late")
        except discord.NotFound as exc:
            failures.append(exc)
        answered.set()

    record = await world.fake.invoke(guild_id=world.guild.id, user_id=ALICE, command="late")
    now[0] = 3.5
    release.set()
    await asyncio.wait_for(answered.wait(), 10)
    assert failures[0].code == 10062 and not record.acknowledged
