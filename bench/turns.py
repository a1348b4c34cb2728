"""Turn latency through the real stack (issue 5, benchmarks 1-3): one simulated user, one guild.

    .venv/bin/python -m bench.turns [--turns 50] [--sequential 20] [--bargein 20]

End of user speech = the moment the simulated user's last packet left its socket (Discord clients
send five 20 ms Opus-silence frames after the voice, then stop; the segmenter's gap timer counts
from that last packet). First audio = the first non-silence packet of the reply arriving at the
fake voice server. Stage boundaries come from the bot's own ``TurnTimings`` (CLOCK_MONOTONIC in
both processes, so they line up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
from collections.abc import Iterable
from typing import Any

from bench.stack import Member, Stack, running_stack, utterance_opus
from bot.audio.wav import pcm16_to_wav
from tests.fakes.mistral.audio import SECONDS_PER_CHARACTER, TTS_SAMPLE_RATE, speech_samples
from tests.fakes.mistral.sse import tokens_of
from tests.fakes.mistral.state import Latency
from tests.fakes.synth import speech_like
from tests.fakes.voice.alignment import align, played_audio
from tests.fakes.voice.rtp import OPUS_SILENCE

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France. It sits on the river Seine."
# Injected service latencies (the brief): STT final 200 ms after the end of audio, chat first
# token 300 ms then 30 tokens/s, TTS first audio 300 ms per sentence then real time.
STT_FINAL = 0.200
CHAT_FIRST_TOKEN = 0.300
TOKENS_PER_S = 30.0
TTS_FIRST_AUDIO = 0.300
TTS_JITTER = 0.040  # each TTS chunk up to 40 ms early or late around the real-time schedule (issue 13)
SILENCE_END = 0.400  # Hearing's default end-of-speech silence: a product decision, reported apart
UTTERANCE_S = 1.2
TURN_TIMEOUT = 30.0
STAGES = ("speech_end", "transcript_final", "first_token", "first_sentence", "first_tts_audio",
          "first_packet_sent", "first_packet_received")


def tts_chunk_seconds(chunk_bytes: int) -> float:
    return chunk_bytes / 4 / TTS_SAMPLE_RATE  # float32 mono at 24 kHz


def first_sentence_tokens(text: str) -> int:
    """Tokens up to and including the one that ends the first sentence (the fake's tokenizer)."""
    for index, token in enumerate(tokens_of(text), start=1):
        if token.rstrip().endswith((".", "!", "?")):
            return index
    return len(tokens_of(text))


def streaming_critical_path(text: str = ANSWER) -> float:
    """STT final + chat first token + the rest of the first sentence at 30 tok/s + TTS first audio."""
    return STT_FINAL + CHAT_FIRST_TOKEN + (first_sentence_tokens(text) - 1) / TOKENS_PER_S + TTS_FIRST_AUDIO


def sequential_service_time(text: str, chunk_bytes: int) -> dict[str, float]:
    """What the same services need for the naive design: every step waits for the previous one's end."""
    tokens = len(tokens_of(text))
    samples = max(1, round(len(text) * SECONDS_PER_CHARACTER * TTS_SAMPLE_RATE))
    chunks = math.ceil(samples * 4 / chunk_bytes)
    chat = CHAT_FIRST_TOKEN + (tokens - 1) / TOKENS_PER_S
    tts = TTS_FIRST_AUDIO + (chunks - 1) * tts_chunk_seconds(chunk_bytes)
    return {"stt": STT_FINAL, "chat": chat, "tts": tts, "total": STT_FINAL + chat + tts}


def configure_streaming(stack: Stack) -> None:
    fake = stack.fake_mistral
    fake.transcribe = lambda _audio: QUESTION
    fake.reply = lambda _messages: ANSWER
    fake.latency = Latency(stt_final=STT_FINAL, chat_first_token=CHAT_FIRST_TOKEN, chat_tokens_per_s=TOKENS_PER_S,
                           tts_first_audio=TTS_FIRST_AUDIO, tts_jitter=TTS_JITTER,
                           tts_chunk_interval=tts_chunk_seconds(fake.tts_chunk_bytes))


def configure_sequential(stack: Stack) -> dict[str, float]:
    """The fake answers non-streamed requests after one delay; make it the time the whole answer
    takes at the same rates (a full reply at 30 tok/s, a whole TTS file generated in real time)."""
    configure_streaming(stack)
    fake = stack.fake_mistral
    need = sequential_service_time(ANSWER, fake.tts_chunk_bytes)
    fake.latency.chat_first_token = need["chat"]
    fake.latency.tts_first_audio = need["tts"]
    fake.latency.stt_batch = STT_FINAL
    return need


def pct(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (an observed value), as bot/conversation/timings.py reports p95."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "p95": round(pct(values, 0.95), 1),
            "min": round(min(values), 1), "max": round(max(values), 1), "mean": round(statistics.fmean(values), 1),
            "n": len(values)}


async def _wait_turn(stack: Stack, guild_id: int, after: float, *, poll: float = 0.25) -> dict[str, float]:
    """The bot's TurnTimings of the first turn whose speech ended after ``after`` (once recorded)."""
    async with asyncio.timeout(TURN_TIMEOUT):
        while True:
            for turn in reversed(await stack.bot_for(guild_id).turns(guild_id)):
                if turn.get("speech_end", 0.0) > after:
                    return turn
            await asyncio.sleep(poll)


def _first_reply_packet(stack: Stack, guild_id: int, after: float) -> float | None:
    first = None
    for frame in reversed(stack.fake_voice.bot_audio(guild_id).frames):
        if frame.received_at <= after:
            break
        if frame.opus != OPUS_SILENCE:
            first = frame.received_at
    return first


def _last_reply_packet(stack: Stack, guild_id: int) -> float:
    for frame in reversed(stack.fake_voice.bot_audio(guild_id).frames):
        if frame.opus != OPUS_SILENCE:
            return frame.received_at
    return 0.0


async def _wait_reply_played(stack: Stack, guild_id: int, after: float, quiet: float = 0.3) -> float:
    """Watch the fake's side only (no calls into the bot): the first reply packet after ``after``,
    then ``quiet`` seconds without reply audio. Returns the first packet's arrival."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(TURN_TIMEOUT):
        # Polling the fake's recording: a bench loop, and an Event would need hooks in the fake.
        while (first := _first_reply_packet(stack, guild_id, after)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        while loop.time() - _last_reply_packet(stack, guild_id) < quiet:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return first


def inserted_silence_ms(stack: Stack, guild_id: int, first_rx: float, asked_at: float) -> float:
    """Silence the bot put into the reply that began at ``first_rx``: its frames decoded and lined
    up, sentence by sentence, with the speech the fake TTS made for the requests after ``asked_at``
    (tests/fakes/voice/alignment.py)."""
    frames = [f for f in stack.fake_voice.bot_audio(guild_id).frames if f.received_at >= first_rx]
    voiced = [i for i, f in enumerate(frames) if f.opus != OPUS_SILENCE]
    spoken = [r.body["input"] for r in stack.fake_mistral.requests_to("speech") if r.received_at > asked_at]
    if not voiced or not spoken:
        return float("nan")
    sentences = [speech_samples(text).astype("float64") for text in spoken]
    report = align(played_audio(frames[: voiced[-1] + 1]), sentences, tts_rate=TTS_SAMPLE_RATE)
    return report.inserted_ms


async def one_turn(stack: Stack, member: Member, opus: list[bytes], *,
                   check_playback: bool = False) -> dict[str, Any]:
    """The user asks; wait until the bot has played its whole answer. Times in seconds.
    ``check_playback`` also lines the reply up with the TTS audio (decoding costs the fakes' CPU,
    so the scaling runs leave it off)."""
    start = len(member.sent_at)
    await member.speaker.speak_opus(opus)
    sent = member.sent_at[start:]
    last_sent, last_voiced = sent[-1], sent[len(opus) - 1]
    first_rx = await _wait_reply_played(stack, member.guild_id, last_sent)
    turn = await _wait_turn(stack, member.guild_id, sent[0])
    inserted = inserted_silence_ms(stack, member.guild_id, first_rx, sent[0]) if check_playback else float("nan")
    return {"last_sent": last_sent, "last_voiced": last_voiced, "stamps": turn, "first_rx": first_rx,
            "inserted_silence_ms": inserted}


def analyse(samples: list[dict[str, Any]], critical_path: float) -> dict[str, Any]:
    """ms figures per turn → p50/p95 per figure."""
    rows: dict[str, list[float]] = {}

    def add(name: str, seconds: float | None) -> None:
        if seconds is not None:
            rows.setdefault(name, []).append(seconds * 1000)

    for s in samples:
        stamps, last = s["stamps"], s["last_sent"]
        if s["first_rx"] is None or "speech_end" not in stamps:
            continue
        add("first_audio", s["first_rx"] - last)
        add("first_audio_from_last_voiced", s["first_rx"] - s["last_voiced"])
        add("endpointing", stamps["speech_end"] - last)
        add("from_speech_end", s["first_rx"] - stamps["speech_end"])
        add("overhead", s["first_rx"] - last - SILENCE_END - critical_path)
        add("overhead_after_speech_end", s["first_rx"] - stamps["speech_end"] - critical_path)
        if s.get("inserted_silence_ms") == s.get("inserted_silence_ms"):  # not NaN
            add("inserted_silence", s["inserted_silence_ms"] / 1000)
        previous = stamps["speech_end"]
        for stage in STAGES[1:]:
            at = s["first_rx"] if stage == "first_packet_received" else stamps.get(stage)
            if at is not None:
                add(f"step_{stage}", at - previous)
                previous = at
    return {name: summary(values) for name, values in rows.items()}


async def run_turns(stack: Stack, member: Member, count: int, *, warmup: int = 1, seed: int = 11,
                    check_playback: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the warm-up turns, the measured turns). The first warm-up turn is the guild's first
    after the bot started: reported on its own, since every restart makes one. The sequential
    baseline plays through discord.py's own ``FFmpegOpusAudio``, which sends the Ogg header
    packets (OpusHead, OpusTags) as frames: it is not lined up (``check_playback=False``)."""
    opus = utterance_opus(UTTERANCE_S, seed)
    samples = []
    for _ in range(warmup + count):
        samples.append(await one_turn(stack, member, opus, check_playback=check_playback))
        await asyncio.sleep(0.3)
    return samples[:warmup], samples[warmup:]


async def run_bargein(stack: Stack, member: Member, count: int, *, into_reply: float = 0.4,
                      seed: int = 13) -> list[dict[str, float]]:
    """Each trial: the user speaks while the answer to the previous question plays.

    Onset = the first packet of the interrupting speech leaving the user's socket; stop = the last
    non-silence packet of the interrupted reply reaching the fake voice server.
    """
    opus = utterance_opus(UTTERANCE_S, seed)
    voiced_needed = 10  # the segmenter's min_speech (0.2 s) of 20 ms frames confirms the onset
    gid = member.guild_id
    audio = stack.fake_voice.bot_audio(gid)
    start = len(member.sent_at)
    await member.speaker.speak_opus(opus)
    after = member.sent_at[-1]
    results = []
    missed = 0
    for _ in range(count + 1):
        try:
            async with asyncio.timeout(10.0):
                while (first := _first_reply_packet(stack, gid, after)) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        except TimeoutError:
            # No answer to the interrupting question (counted, reported): ask afresh and go on.
            missed += 1
            await member.speaker.speak_opus(opus)
            after = member.sent_at[-1]
            continue
        await asyncio.sleep(max(0.0, first + into_reply - asyncio.get_running_loop().time()))
        start = len(member.sent_at)
        await member.speaker.speak_opus(opus)
        sent = member.sent_at[start:]
        onset, confirmed, after = sent[0], sent[voiced_needed - 1], sent[-1]
        heard = [f.received_at for f in audio.frames
                 if f.opus != OPUS_SILENCE and first <= f.received_at <= after]
        wire = [f.received_at for f in audio.frames if first <= f.received_at <= after]
        if heard:
            results.append({"stop": heard[-1] - onset, "stop_after_confirmed": heard[-1] - confirmed,
                            "silence_tail": wire[-1] - heard[-1]})
    # Let the last answer play out so the guild is idle again.
    with contextlib.suppress(TimeoutError):
        await _wait_reply_played(stack, gid, after)
    kept = results[1:] if len(results) > count else results
    for r in kept:
        r["missed_replies"] = missed
    return kept


def bargein_summary(results: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {key: summary([r[key] * 1000 for r in results])
                           for key in ("stop", "stop_after_confirmed", "silence_tail")}
    out["missed_replies"] = results[0]["missed_replies"] if results else 0
    return out


CLIP_S = 30.0  # the longest clip /voice set keeps: the worst case for the reference (issue 13)


async def run_clip_turns(stack: Stack, member: Member, count: int, critical: float, *,
                         refuse_voices: int | None) -> dict[str, Any]:
    """Turns in a guild with a 30 s clip set: registered as a voice (a paid plan), or, with the
    fake refusing voice creation as a free plan does, sent as its compact reference."""
    wav = stack.workdir / f"clip-{member.guild_id}.wav"
    pcm = (speech_like(CLIP_S, TTS_SAMPLE_RATE, seed=5) * 20_000).astype("<i2").tobytes()
    await asyncio.to_thread(wav.write_bytes, pcm16_to_wav(pcm, sample_rate=TTS_SAMPLE_RATE))
    stack.fake_mistral.voice_creation_refused = refuse_voices
    try:
        prepared = await stack.bot_for(member.guild_id).call("set_clip", guild=member.guild_id, wav=str(wav))
    finally:
        stack.fake_mistral.voice_creation_refused = None
    before = len(stack.fake_mistral.requests_to("speech"))
    measured = (await run_turns(stack, member, count))[1]
    sizes = [r.body_bytes for r in stack.fake_mistral.requests_to("speech")[before:]]
    return {"prepared": prepared, "turns": analyse(measured, critical), "request_bytes": summary(sizes)}


async def measure(turns: int, sequential: int, bargein: int) -> dict[str, Any]:
    async with running_stack(4, log_name="turns") as stack:
        streaming_world, sequential_world, voice_world, reference_world = stack.worlds
        await stack.bot_for(sequential_world.guild.id).call("sequential", guild=sequential_world.guild.id)
        member = await stack.join(streaming_world, seed=1)
        baseline = await stack.join(sequential_world, seed=2)
        configure_streaming(stack)
        critical = streaming_critical_path()
        before = len(stack.fake_mistral.requests_to("speech"))
        warm, measured = await run_turns(stack, member, turns)
        no_clip_bytes = summary([r.body_bytes for r in stack.fake_mistral.requests_to("speech")[before:]])
        streaming, first_turn = analyse(measured, critical), analyse(warm[:1], critical)
        # The same question in guilds with a clip, in the same run (goal: at most +50 ms).
        clip_turns = max(3, min(turns // 3, 6))  # quick: 3 each, full: 6 (a clip adds no per-turn work)
        with_voice = await run_clip_turns(stack, await stack.join(voice_world, seed=3), clip_turns, critical,
                                          refuse_voices=None)
        with_reference = await run_clip_turns(stack, await stack.join(reference_world, seed=4), clip_turns,
                                              critical, refuse_voices=403)
        barge = bargein_summary(await run_bargein(stack, member, bargein)) if bargein else {}
        need = configure_sequential(stack)
        seq = (analyse((await run_turns(stack, baseline, sequential, check_playback=False))[1], need["total"])
               if sequential else {})
    return {
        "critical_path_ms": round(critical * 1000, 1),
        "sequential_service_ms": {k: round(v * 1000, 1) for k, v in need.items()},
        "silence_end_ms": SILENCE_END * 1000,
        "streaming": streaming,
        "no_clip_request_bytes": no_clip_bytes,
        "with_registered_voice": with_voice,
        "with_clip_reference": with_reference,
        "first_turn_after_start": first_turn,
        "sequential": seq,
        "bargein": barge,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--bargein", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.turns, args.sequential, args.bargein)), indent=1))


if __name__ == "__main__":
    main()
