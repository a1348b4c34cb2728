"""When the realtime socket gets each piece of audio: in the loop turn the pump pulled it (a turn
later, at 50 talking guilds, was 30-50 ms before the server had the silence that ends a turn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from mistralai.client.models import TranscriptionStreamDone, UsageInfo

from bot.mistral import RetryPolicy, StreamingTranscriber
from tests.loop_turns import LoopTurns

PIECE = b"\x01\x10" * 320  # 20 ms of 16 kHz s16le


class RecordingConnection:
    """The SDK's ``RealtimeConnection`` as the transcriber uses it; notes the loop turn of each send."""

    def __init__(self, turns: LoopTurns) -> None:
        self.turns = turns
        self.sends: list[tuple[int, int]] = []  # (loop turn, bytes)
        self.sent = asyncio.Event()
        self.ended = asyncio.Event()

    async def __aenter__(self) -> RecordingConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send_audio(self, audio: bytes) -> None:
        self.sends.append((self.turns.count, len(audio)))
        self.sent.set()

    async def flush_audio(self) -> None:
        return None

    async def end_audio(self) -> None:
        self.ended.set()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        await self.ended.wait()
        yield TranscriptionStreamDone(model="voxtral-mini-transcribe-realtime-2602", text="hello", language="en",
                                      usage=UsageInfo(prompt_tokens=0, completion_tokens=1, total_tokens=1))


def client_with(connection: RecordingConnection) -> Any:
    async def connect(model: str, **options: object) -> RecordingConnection:
        return connection

    return SimpleNamespace(audio=SimpleNamespace(realtime=SimpleNamespace(connect=connect)))


async def test_audio_pulled_while_the_session_is_open_is_sent_in_the_same_loop_turn() -> None:
    turns = LoopTurns()
    connection = RecordingConnection(turns)
    transcriber = StreamingTranscriber(client_with(connection), realtime_model="voxtral-mini-transcribe-realtime-2602",
                                       batch_model="voxtral-mini-latest",
                                       retry=RetryPolicy(max_attempts=1, max_total_seconds=1.0))
    pulled: list[int] = []

    async def talking() -> AsyncIterator[bytes]:
        yield PIECE  # before the session is open: it waits for the sender
        await connection.sent.wait()
        for _ in range(5):
            pulled.append(turns.count)
            yield PIECE
            await asyncio.sleep(0)  # the next packet comes in a later loop turn

    try:
        async with asyncio.timeout(10):
            transcript = await transcriber.transcribe(talking())
    finally:
        turns.stop()
    assert transcript.text == "hello" and transcript.source == "realtime"
    assert sum(size for _, size in connection.sends) == 6 * len(PIECE)  # every byte once, in order
    assert [turn for turn, _ in connection.sends[1:]] == pulled
