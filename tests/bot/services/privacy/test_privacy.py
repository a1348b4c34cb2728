"""The privacy engine on a real SQLite store with a settable clock, and the receiver's consent gate
on hand-sealed packets. End-to-end proofs through both fakes are in tests/e2e/test_privacy.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from bot.audio.opus import OpusDecoder
from bot.audio.resample import DownmixResampler
from bot.services.privacy import (
    LISTENING_SUFFIX,
    NICK_LIMIT,
    GuildAdmission,
    PrivacyService,
    RetentionPurger,
    listening_nick,
    notice_text,
    plain_name,
    service_host,
)
from bot.store import Database
from bot.store.models import Turn
from bot.voice.receiver import VoiceReceiver
from tests.bot.services.privacy.conftest import NOW
from tests.bot.store.support import FakeClock
from tests.fakes.voice.packets import (
    ALICE_ID,
    ALICE_SSRC,
    BOB_ID,
    BOB_SSRC,
    FakeConnection,
    RecordingSink,
    opus_packets,
    seal,
)

GUILD, OTHER_GUILD = 10, 20
ALICE, BOB = 1001, 1002


@pytest.fixture
def service(database: Database, clock: FakeClock) -> PrivacyService:
    return PrivacyService(database=database, stt_host="api.mistral.ai", clock=clock)


def turn(guild_id: int, speaker_id: int | None, text: str, age: dt.timedelta, role: str = "user") -> Turn:
    return Turn(id=None, guild_id=guild_id, speaker_id=speaker_id, speaker_name=f"user{speaker_id}",
                role=role, text=text, created_at=NOW - age)


# ------------------------------------------------------------------------------ consent


async def test_opt_out_mode_hears_everyone_but_those_who_opted_out(service: PrivacyService) -> None:
    assert (await service.status(GUILD, ALICE)).heard
    out = await service.opt_out(GUILD, ALICE)
    assert (out.heard, out.choice) == (False, False)
    assert not (await service.status(GUILD, ALICE)).heard
    assert (await service.status(GUILD, BOB)).heard
    assert (await service.status(OTHER_GUILD, ALICE)).heard  # per guild
    back = await service.opt_in(GUILD, ALICE)
    assert (back.heard, back.choice) == (True, True)


async def test_opt_in_mode_denies_by_default(service: PrivacyService) -> None:
    await service.set_consent_mode(GUILD, "opt_in")
    assert not (await service.status(GUILD, ALICE)).heard
    assert (await service.status(GUILD, ALICE)).choice is None
    assert (await service.opt_in(GUILD, ALICE)).heard
    assert not (await service.status(GUILD, BOB)).heard


async def test_admission_follows_every_change_and_tells_its_listener(service: PrivacyService) -> None:
    await service.opt_out(GUILD, BOB)
    changes: list[str] = []
    admit = await service.admission(GUILD, on_change=lambda: changes.append("changed"))
    assert admit(ALICE) and not admit(BOB)

    await service.opt_out(GUILD, ALICE)
    assert not admit(ALICE)
    await service.opt_in(GUILD, BOB)
    assert admit(BOB)
    await service.set_consent_mode(GUILD, "opt_in")
    assert admit.consent_mode == "opt_in"
    assert admit(BOB) and not admit(ALICE) and not admit(4242)  # no choice: denied
    await service.forget(GUILD, BOB, forget_choice=True)
    assert not admit(BOB)  # back to the guild default, opt_in
    assert changes == ["changed"] * 4

    # After the session ends the listener is dropped; other guilds never touched it.
    guild = _FakeGuild(GUILD)
    await service.release(guild)  # type: ignore[arg-type]
    await service.opt_in(GUILD, ALICE)
    assert changes == ["changed"] * 4


def test_guild_admission_is_a_pure_lookup() -> None:
    admit = GuildAdmission("opt_out", {ALICE: False})
    assert not admit(ALICE) and admit(BOB)
    admit = GuildAdmission("opt_in", {ALICE: True})
    assert admit(ALICE) and not admit(BOB)


# ------------------------------------------------------------------------------ retention


async def test_purge_removes_exactly_the_turns_older_than_each_guilds_retention(
    database: Database, clock: FakeClock
) -> None:
    day = dt.timedelta(days=1)
    await database.guilds.update(OTHER_GUILD, retention_days=7)
    kept_default = [turn(GUILD, ALICE, "29 days", 29 * day), turn(GUILD, None, "at the edge", 30 * day, "assistant"),
                    turn(GUILD, BOB, "today", dt.timedelta(minutes=1))]
    old_default = [turn(GUILD, ALICE, "31 days", 31 * day), turn(GUILD, None, "a year", 365 * day, "assistant")]
    kept_short = [turn(OTHER_GUILD, ALICE, "6 days", 6 * day)]
    old_short = [turn(OTHER_GUILD, BOB, "8 days", 8 * day)]
    await database.turns.add_many(kept_default + old_default + kept_short + old_short)

    purger = RetentionPurger(database=database, clock=clock)
    # No guild list given: the sweep finds every guild with stored text itself, so text from a
    # guild the bot has left ages out too.
    removed = await purger.run_once()

    assert removed == {GUILD: 2, OTHER_GUILD: 1}
    assert {t.text for t in await database.turns.recent(GUILD, limit=50)} == {t.text for t in kept_default}
    assert {t.text for t in await database.turns.recent(OTHER_GUILD, limit=50)} == {t.text for t in kept_short}

    # Time passes on the injected clock: the next sweep takes what has aged out since.
    clock.advance(2 * day)
    assert await purger.run_once() == {GUILD: 2, OTHER_GUILD: 1}
    assert [t.text for t in await database.turns.recent(GUILD, limit=50)] == ["today"]
    assert await database.turns.count(OTHER_GUILD) == 0


async def test_the_periodic_purge_runs_on_its_injected_sleep(database: Database, clock: FakeClock) -> None:
    await database.turns.add(turn(GUILD, ALICE, "old", dt.timedelta(days=40)))
    sweeps = asyncio.Event()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= 2:  # the first sweep happened; park until stopped
            sweeps.set()
            await asyncio.Event().wait()

    purger = RetentionPurger(database=database, clock=clock, interval=3600, first_delay=60, sleep=sleep)
    purger.start()
    await asyncio.wait_for(sweeps.wait(), 10)
    await purger.stop()
    assert sleeps == [60, 3600]
    assert await database.turns.count(GUILD) == 0


async def test_shortening_retention_deletes_what_is_now_too_old(service: PrivacyService, database: Database) -> None:
    await database.turns.add_many([turn(GUILD, ALICE, "10 days", dt.timedelta(days=10)),
                                   turn(GUILD, ALICE, "2 days", dt.timedelta(days=2))])
    assert await service.set_retention(GUILD, 5) == 1
    assert (await database.guilds.get(GUILD)).retention_days == 5
    assert [t.text for t in await database.turns.recent(GUILD, limit=10)] == ["2 days"]


# ------------------------------------------------------------------------------ export and erasure


async def test_forget_removes_exactly_that_members_turns_in_that_guild(
    service: PrivacyService, database: Database
) -> None:
    minute = dt.timedelta(minutes=1)
    await database.turns.add_many([
        turn(GUILD, ALICE, "alice one", 3 * minute), turn(GUILD, BOB, "bob one", 2 * minute),
        turn(GUILD, None, "reply", minute, "assistant"), turn(GUILD, ALICE, "alice two", minute),
        turn(OTHER_GUILD, ALICE, "alice elsewhere", minute),
    ])
    await service.opt_out(GUILD, ALICE)

    forgotten = await service.forget(GUILD, ALICE, forget_choice=False)

    assert (forgotten.turns, forgotten.choice_removed, forgotten.heard_now) == (2, False, False)
    assert [t.text for t in await database.turns.recent(GUILD, limit=10)] == ["bob one", "reply"]
    assert [t.text for t in await database.turns.for_speaker(OTHER_GUILD, ALICE)] == ["alice elsewhere"]
    assert await database.privacy.status(GUILD, ALICE) is False  # the choice survives unless asked

    again = await service.forget(GUILD, ALICE, forget_choice=True)
    assert (again.turns, again.choice_removed, again.heard_now) == (0, True, True)
    assert await database.privacy.status(GUILD, ALICE) is None


async def test_export_is_exactly_that_members_turns_as_json(service: PrivacyService, database: Database) -> None:
    minute = dt.timedelta(minutes=1)
    await database.turns.add_many([
        turn(GUILD, ALICE, "first", 3 * minute), turn(GUILD, BOB, "not mine", 2 * minute),
        turn(GUILD, None, "the bot", 2 * minute, "assistant"), turn(GUILD, ALICE, "second", minute, "context"),
        turn(OTHER_GUILD, ALICE, "other guild", minute),
    ])
    count, data = await service.export(GUILD, ALICE)
    document = json.loads(data)
    assert count == 2
    assert (document["guild_id"], document["user_id"]) == (str(GUILD), str(ALICE))
    assert [(t["text"], t["role"]) for t in document["turns"]] == [("first", "user"), ("second", "context")]
    assert document["turns"][0]["at"] == (NOW - 3 * minute).isoformat()
    assert "No audio" in document["note"]

    assert (await service.export(GUILD, 4242))[0] == 0
    with pytest.raises(Exception, match="larger than Discord"):
        await service.export(GUILD, ALICE, limit_bytes=10)


# ------------------------------------------------------------------------------ notice and nickname


def test_notice_names_the_host_retention_and_how_to_opt_out() -> None:
    text = notice_text(voice_mention="<#5>", consent_mode="opt_out", retention_days=12, stt_host="eu.example:8443")
    for needed in ("<#5>", "Mistral", "`eu.example:8443`", "never stored", "12 days", "retention",
                   "/privacy optout", "except members who opted out"):
        assert needed in text, needed
    opt_in = notice_text(voice_mention="<#5>", consent_mode="opt_in", retention_days=30, stt_host="h")
    assert "only members who opted in" in opt_in
    assert "Captions" not in text
    captioned = notice_text(voice_mention="<#5>", consent_mode="opt_out", retention_days=12, stt_host="h",
                            captions_channel_id=77)
    assert "**Captions are on:**" in captioned and "<#77>" in captioned


def test_service_host_shows_the_host_never_credentials() -> None:
    assert service_host(None) == "api.mistral.ai"
    assert service_host("https://user:s3cret@proxy.example:8443/base") == "proxy.example:8443"
    assert service_host("http://127.0.0.1:5555") == "127.0.0.1:5555"


def test_listening_nick_fits_discords_limit_and_round_trips() -> None:
    assert listening_nick("Voxcord") == "Voxcord" + LISTENING_SUFFIX
    long = listening_nick("A" * 40)
    assert len(long) <= NICK_LIMIT and long.endswith(LISTENING_SUFFIX)
    assert plain_name(listening_nick("Voxcord")) == "Voxcord"
    assert listening_nick(listening_nick("Voxcord")) == "Voxcord" + LISTENING_SUFFIX


class _FakeGuild:
    def __init__(self, guild_id: int) -> None:
        self.id = guild_id
        self.me = None


# ------------------------------------------------------------------------------ the receiver's gate


class _CountingDecoder:
    made = 0

    def __init__(self) -> None:
        type(self).made += 1
        self.inner = OpusDecoder()
        self.decoded = 0

    def decode(self, packet: bytes) -> bytes:
        self.decoded += 1
        return self.inner.decode(packet)

    def conceal(self, next_packet: bytes | None = None) -> bytes:
        return self.inner.conceal(next_packet)

    def close(self) -> None:
        self.inner.close()


async def test_a_refused_speaker_is_dropped_before_decryption_and_readmitted_on_change() -> None:
    connection = FakeConnection()
    decoders: list[_CountingDecoder] = []

    def decoder() -> _CountingDecoder:
        decoders.append(_CountingDecoder())
        return decoders[-1]

    receiver = VoiceReceiver(connection, decoder_factory=decoder, resampler_factory=DownmixResampler,
                             batch_interval=0)
    sink = RecordingSink()
    allowed = {ALICE_ID: True, BOB_ID: False}
    asked: list[int] = []

    def admit(user_id: int) -> bool:
        asked.append(user_id)
        return allowed[user_id]

    receiver.start(sink, admit=admit)
    receiver.map_ssrc(ALICE_SSRC, ALICE_ID)
    receiver.map_ssrc(BOB_SSRC, BOB_ID)
    packets = opus_packets(20, seed=3)

    def feed(seqs: range, ssrc: int) -> None:
        for seq in seqs:
            receiver.on_packet(seal(connection.key, seq, seq * 960, ssrc, packets[seq % 20], counter=seq))

    feed(range(10), ALICE_SSRC)
    feed(range(10), BOB_SSRC)
    await asyncio.sleep(0)
    assert receiver.refused_packets == {BOB_ID: 10}
    assert receiver.stats.decrypted == 10  # Alice's only: Bob's were never even decrypted
    assert len(decoders) == 1 and sink.pcm(BOB_ID) == b""
    assert asked == [ALICE_ID, BOB_ID]  # once per SSRC, not per packet

    # Alice opts out mid-stream: her state goes at once, her buffered packets undecoded.
    allowed[ALICE_ID], allowed[BOB_ID] = False, True
    decoded_before = decoders[0].decoded
    receiver.readmit()
    await asyncio.sleep(0)
    assert sink.events[-1] == ("gone", ALICE_ID)
    feed(range(10, 20), ALICE_SSRC)
    feed(range(10, 20), BOB_SSRC)
    await asyncio.sleep(0)
    assert decoders[0].decoded == decoded_before
    assert receiver.refused_packets == {BOB_ID: 10, ALICE_ID: 10}
    assert len(sink.pcm(BOB_ID)) > 0  # Bob opted in: heard from his next packet on
    receiver.stop()
