"""/privacy forget-me and the retention sweep on caption messages, through the loopback Discord.

Captions are posted by the bot's own captions subscriber (fed conversation events directly, no voice
call needed) through discord.py to the fake, which keeps every message and answers GET/PATCH/DELETE
as Discord does (404 once deleted, 403 without View Channel, 403 on GET without Read Message History).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import discord

from bot.app import VoxcordBot
from bot.conversation import events
from bot.conversation.timings import TurnTimings
from bot.services.captions import CaptionsService
from bot.services.privacy import CaptionEraser, DiscordCaptionMessages, RetentionPurger
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import READ_MESSAGE_HISTORY, VIEW_CHANNEL, FakeChannel, Overwrite
from tests.harness import World, build_world, running_bot, settings_for


def said(world: World, user_id: int, name: str, question: str, answer: str) -> events.ReplyFinished:
    return events.ReplyFinished(guild_id=world.guild.id, at=0.0, turn_id=0, user_id=user_id, speaker_name=name,
                                question=question, text=answer, outcome="spoken",
                                timings=TurnTimings(clock=lambda: 0.0))


async def run(fake: FakeDiscord, world: World, user_id: int, command: str, **options: object):
    interaction = await fake.invoke(guild_id=world.guild.id, user_id=user_id, command=command,
                                    options=options or None, channel_id=world.text.id)
    reply = await interaction.wait_reply(timeout=10)
    return interaction, reply


async def caption(bot: VoxcordBot, world: World, *turns: events.ReplyFinished) -> list[int]:
    """Post ``turns`` as one window of captions, as in a call; returns the new message ids."""
    assert bot.captions is not None
    guild = bot.get_guild(world.guild.id)
    assert isinstance(guild, discord.Guild)
    bus = events.EventBus()
    close = bot.captions.attach(guild, bus)
    for turn in turns:
        bus.publish(turn)
    await close()  # posts what waits at once
    return [m.message_id for m in await bot.database.captions.older_than(
        world.guild.id, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))]


def content(fake: FakeDiscord, message_id: int) -> str | None:
    message = fake.messages.by_id.get(message_id)
    return None if message is None else str(message["content"])


async def captions_on(fake: FakeDiscord, world: World, channel: FakeChannel) -> None:
    await run(fake, world, world.admin_id, "admin settings captions", mode="on", channel=channel)


async def test_forget_me_cuts_the_members_lines_out_of_caption_messages(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    channel = world.guild.add_text_channel("captions")  # before the bot starts: in its cache
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        await captions_on(fake_discord, world, channel)
        [shared] = await caption(bot, world, said(world, world.member_id, "bob", "Is it raining?", "Yes."),
                                 said(world, world.admin_id, "alice", "And tomorrow?", "Sunny."))
        [only_bob] = [m for m in await caption(bot, world, said(world, world.member_id, "bob", "Thanks!", "Any time."))
                      if m != shared]
        assert content(fake_discord, shared) == ("**bob**: Is it raining?\n**Voxcord**: Yes.\n"
                                                 "**alice**: And tomorrow?\n**Voxcord**: Sunny.")

        interaction, reply = await run(fake_discord, world, world.member_id, "privacy forget-me")
        assert interaction.deferred and (interaction.first_ack_after or 0) < 3.0
        assert reply.ephemeral
        assert "removed your lines (and my answers to you) from 1 caption message" in reply.content
        assert "1 caption message with your lines is gone entirely" in reply.content

        assert content(fake_discord, shared) == "**alice**: And tomorrow?\n**Voxcord**: Sunny."
        assert content(fake_discord, only_bob) is None
        assert await bot.database.captions.get(only_bob) is None
        again = await bot.database.captions.get(shared)
        assert again is not None and [line.user_id for line in again.lines] == [world.admin_id] * 2


async def test_discord_refusing_is_told_and_retried_by_the_sweep_and_deleted_messages_are_fine(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    channel = world.guild.add_text_channel("captions")
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        await captions_on(fake_discord, world, channel)
        [first] = await caption(bot, world, said(world, world.member_id, "bob", "One?", "Uno."),
                                said(world, world.admin_id, "alice", "Two?", "Dos."))
        [second] = [m for m in await caption(bot, world, said(world, world.member_id, "bob", "Three?", "Tres."),
                                             said(world, world.admin_id, "alice", "Four?", "Cuatro."))
                    if m != first]
        fake_discord.messages.by_id.pop(second)  # a moderator deleted it: nothing left to do there
        hidden = Overwrite.member(fake_discord.bot_user.id, deny=VIEW_CHANNEL)
        channel.overwrites.append(hidden)  # the bot lost access to the captions channel

        _, reply = await run(fake_discord, world, world.member_id, "privacy forget-me")
        # As on Discord, no access is 403 whether or not the message still exists.
        assert "2 caption messages with your lines could not be changed yet" in reply.content
        assert "retry within the hour" in reply.content
        assert "**bob**: One?" in (content(fake_discord, first) or "")
        assert await bot.database.captions.get(second) is not None

        channel.overwrites.remove(hidden)
        eraser = CaptionEraser(database=bot.database, messages=DiscordCaptionMessages(lambda: bot))
        await RetentionPurger(database=bot.database, captions=eraser).run_once()
        assert content(fake_discord, first) == "**alice**: Two?\n**Voxcord**: Dos."
        assert await bot.database.captions.get(second) is None  # the 404 dropped its row
        assert await bot.database.captions.with_forgotten(world.guild.id) == []


async def test_without_read_message_history_the_message_goes_whole_and_retention_deletes_old_ones(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    channel = world.guild.add_text_channel("captions")
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        await captions_on(fake_discord, world, channel)
        [shared] = await caption(bot, world, said(world, world.member_id, "bob", "Mine?", "Yes."),
                                 said(world, world.admin_id, "alice", "Hers?", "Also."))
        no_history = Overwrite.member(fake_discord.bot_user.id, deny=READ_MESSAGE_HISTORY)
        channel.overwrites.append(no_history)
        _, reply = await run(fake_discord, world, world.member_id, "privacy forget-me")
        assert "gone entirely" in reply.content
        assert content(fake_discord, shared) is None  # bob's words do not stay for want of a permission
        channel.overwrites.remove(no_history)

        [kept] = await caption(bot, world, said(world, world.admin_id, "alice", "Still here?", "Yes."))
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)  # past the default 30 days
        eraser = CaptionEraser(database=bot.database, messages=DiscordCaptionMessages(lambda: bot))
        await RetentionPurger(database=bot.database, captions=eraser, clock=lambda: later).run_once()
        assert content(fake_discord, kept) is None
        assert await bot.database.captions.guild_ids() == []


async def test_forget_me_reaches_lines_still_waiting_for_their_window(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    channel = world.guild.add_text_channel("captions")
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        await captions_on(fake_discord, world, channel)
        # A window that never ends by itself: the lines wait until the conversation closes.
        waiting = CaptionsService(bot.database, bot_name=lambda _guild: "Voxcord", window=3600.0)
        guild = bot.get_guild(world.guild.id)
        assert isinstance(guild, discord.Guild)
        bus = events.EventBus()
        close = waiting.attach(guild, bus)
        bus.publish(said(world, world.member_id, "bob", "Not posted yet", "Right."))
        bus.publish(said(world, world.admin_id, "alice", "Me neither", "Right."))
        eraser = CaptionEraser(database=bot.database, messages=DiscordCaptionMessages(lambda: bot),
                               before_forget=waiting.forget_pending)
        await eraser.forget(world.guild.id, world.member_id)
        await close()
        posted = [str(m["content"]) for m in fake_discord.sent_messages if m["channel_id"] == str(channel.id)]
        assert posted == ["**alice**: Me neither\n**Voxcord**: Right."]
