"""Every slash command is acknowledged in time, refusals included (through the loopback Discord)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for

DISCORD_ACK_DEADLINE_S = 3.0


async def test_a_burst_of_40_commands_from_one_member_is_all_acknowledged_in_time(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    # The default 12 commands a minute: most of the burst is refused, and each refusal is answered.
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
        records = []
        for _ in range(40):  # 40 commands in 2 s
            records.append(await fake_discord.invoke(
                guild_id=world.guild.id, user_id=world.member_id, command="usage show", channel_id=world.text.id))
            await asyncio.sleep(0.05)
        replies = [await record.wait_reply(timeout=10) for record in records]
    late = [r.first_ack_after for r in records
            if r.first_ack_after is None or r.first_ack_after > DISCORD_ACK_DEADLINE_S]
    assert late == [], "every interaction acknowledged within Discord's 3 s"
    answered = [reply.content for reply in replies]
    served = [c for c in answered if "Usage for" in c]
    refused = [c for c in answered if "Slow down" in c]
    assert len(served) + len(refused) == 40 and 10 <= len(served) <= 14, answered
    assert all(reply.ephemeral for reply in replies)


async def test_a_refused_public_command_is_answered_privately(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path, rate_user_commands_per_minute=1)):
        first = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="leave", channel_id=world.text.id,
        )).wait_reply(timeout=10)
        assert "not in a voice channel" in first.content
        refused = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="leave", channel_id=world.text.id)
        reply = await refused.wait_reply(timeout=10)
    assert "Slow down" in reply.content and reply.ephemeral
    # /leave answers the channel, so it was deferred publicly; that "thinking" message is gone.
    assert [a.kind for a in refused.answers] == ["callback", "delete", "followup"]
