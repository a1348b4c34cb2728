"""/metrics and /healthz of the real bot, assembled as ``python -m bot`` does, against the fakes."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conversation_support import call_in_progress, spoken_question, wait_turns
from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for
from tests.services import PostgresServer, free_port

_names = itertools.count()


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def wait_health(port: int, status: int, deadline: float = 20.0) -> str:
    """The /healthz body once it answers ``status`` (the bot's state changes asynchronously)."""
    seen: tuple[int, str] | None = None
    try:
        async with asyncio.timeout(deadline):
            while (seen := await get(port, "/healthz"))[0] != status:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"/healthz never answered {status}; last: {seen}") from None
    return seen[1]


async def test_healthz_follows_the_gateway_and_the_database(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], postgres_server: PostgresServer | str,
    tmp_path: Path,
) -> None:
    if isinstance(postgres_server, str):
        pytest.skip("needs the test cluster itself, to drop the bot's database under it")
    name = f"voxcord_health_{os.getpid()}_{next(_names)}"
    url = postgres_server.create_database(name)
    port = free_port()
    build_world(fake_discord)
    settings = settings_for(fake_discord, tmp_path, database_url=url, metrics_port=port)
    try:
        async with running_bot(fake_discord, settings):
            assert await wait_health(port, 200) == "ok\n"

            # A gateway outage: the socket drops and reconnecting is refused for a while.
            fake_discord.refuse_gateway()
            await fake_discord.drop_gateway()
            assert await wait_health(port, 503) == "gateway: not connected\n"
            fake_discord.refuse_gateway(False)
            assert await wait_health(port, 200) == "ok\n"

            # The database goes away (dropdb --force ends the bot's connections too).
            await asyncio.to_thread(postgres_server.drop_database, name)
            body = await wait_health(port, 503)
            assert body.startswith("database: ") and "gateway" not in body, body
            assert name not in body and "postgresql://" not in body
    finally:
        await asyncio.to_thread(postgres_server.drop_database, name)


FAMILIES = {
    # family: the samples that must be non-zero after one answered turn (with one 503 from chat
    # and one frame sent without DAVE encryption)
    "voxcord_turn_stage_seconds": 'voxcord_turn_stage_seconds_count{stage="first_packet_sent"}',
    "voxcord_turns": 'voxcord_turns_total{outcome="spoken"}',
    "voxcord_stt_audio_seconds": "voxcord_stt_audio_seconds_total",
    "voxcord_tts_characters": "voxcord_tts_characters_total",
    "voxcord_chat_tokens": 'voxcord_chat_tokens_total{direction="output"}',
    "voxcord_estimated_cost_usd": 'voxcord_estimated_cost_usd_total{kind="tts_characters"}',
    "voxcord_mistral_errors": 'voxcord_mistral_errors_total{kind="unavailable",operation="chat"}',
    "voxcord_mistral_retries": 'voxcord_mistral_retries_total{kind="unavailable",operation="chat"}',
    "voxcord_voice_sessions": "voxcord_voice_sessions",
    "voxcord_voice_sessions_started": "voxcord_voice_sessions_started_total",
    "voxcord_dave_decrypt_failures": 'voxcord_dave_decrypt_failures_total{reason="unencrypted"}',
    "voxcord_event_loop_lag_seconds": "voxcord_event_loop_lag_seconds_count",
}


def samples(text: str) -> tuple[set[str], dict[str, float]]:
    families, values = set(), {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return families, values


async def test_after_one_turn_metrics_hold_every_family_with_non_zero_counts(
    fake_discord: FakeDiscord, fake_voice, fake_mistral, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: "What is the capital of France?"
    fake_mistral.reply = lambda _messages: "Paris. It sits on the Seine."
    fake_mistral.faults.fail_next("chat", status=503)  # one retried failure
    port = free_port()
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path,
                                settings={"metrics_port": port}) as call:
        # One frame sent in the clear while the call is end-to-end encrypted: DAVE refuses it.
        await call.speaker.send_rtp(b"\xfc\xff\xfe" + bytes(40), dave=False)
        await call.speaker.speak(spoken_question())
        await wait_turns(call.bot, call.world.guild.id, 2)
        async with asyncio.timeout(20):  # the turn's ReplyFinished follows its stored rows closely
            while True:
                status, body = await get(port, "/metrics")
                families, values = samples(body)
                if values.get('voxcord_turns_total{outcome="spoken"}'):
                    break
                await asyncio.sleep(0.1)
        health = await get(port, "/healthz")

    assert status == 200 and health == (200, "ok\n")
    assert set(FAMILIES) <= families, sorted(set(FAMILIES) - families)
    zero = {name: sample for name, sample in FAMILIES.items() if not values.get(sample)}
    assert not zero, f"zero or missing: {zero}"
    assert values['voxcord_turns_total{outcome="spoken"}'] == 1
    assert values['voxcord_mistral_retries_total{kind="unavailable",operation="chat"}'] == 1
    assert values["voxcord_voice_sessions"] == 1
    stages = {name.split('"')[1] for name in values if name.startswith("voxcord_turn_stage_seconds_count")}
    assert {"transcript_final", "first_token", "first_sentence", "first_tts_audio", "first_packet_sent",
            "done"} <= stages
    assert not any("guild" in name or "user" in name for name in values)  # no per-guild or per-user series
