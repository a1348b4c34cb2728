"""Scripted stand-ins for the conversation's ports and Mistral clients (no network, no Discord)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from bot.audio.frames import PcmFrame
from bot.mistral import ChatUsage
from bot.mistral.stt import Transcript


class ScriptedTranscriber:
    """Transcribes every utterance as the next scripted text, after sending the partials."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.audio_bytes: list[int] = []

    turn_detection_available = False

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        received = 0
        async for chunk in audio:
            received += len(chunk)
        self.audio_bytes.append(received)
        text = self.texts.pop(0)
        if on_partial is not None:
            words = text.split()
            for n in range(1, len(words) + 1):
                on_partial(" ".join(words[:n]))
        return Transcript(text=text, language="en", audio_seconds=received / 32_000, partial_updates=1)


class ScriptedStream:
    def __init__(self, deltas: list[str], on_open: Callable[[], None] | None = None) -> None:
        self._deltas = list(deltas)
        self._on_open = on_open  # like ChatStream: called once the request is out
        self.usage: ChatUsage | None = None

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> str:
        await asyncio.sleep(0)
        on_open, self._on_open = self._on_open, None
        if on_open is not None:
            on_open()
        if not self._deltas:
            self.usage = ChatUsage(input_tokens=11, output_tokens=7)
            raise StopAsyncIteration
        return self._deltas.pop(0)

    async def aclose(self) -> None:
        return None


class ScriptedChat:
    def __init__(self, *replies: list[str]) -> None:
        self.replies = list(replies)
        self.requests: list[list[object]] = []

    def stream(self, messages: list[object], *, max_tokens: int,
               on_open: Callable[[], None] | None = None) -> ScriptedStream:
        self.requests.append(messages)
        return ScriptedStream(self.replies.pop(0), on_open)


class ScriptedSynthesizer:
    sample_rate = 24_000

    def __init__(self, seconds_per_char: float = 0.01) -> None:
        self._bytes_per_char = int(self.sample_rate * 2 * seconds_per_char) & ~1
        self.texts: list[str] = []

    async def synthesize(self, text: str, *, ref_audio: bytes | None, voice_id: str | None,
                         language: str | None = None) -> AsyncIterator[PcmFrame]:
        self.texts.append(text)
        await asyncio.sleep(0)
        yield PcmFrame(b"\0" * (self._bytes_per_char * len(text)), self.sample_rate, 1)


class InstantPlayer:
    """Stands in for ``SpeechPlayer``: a reply "plays" as soon as it is finished."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.replies = 0
        self._playing = False
        self.calls: list[str] = []
        self.held = False  # begun held and not released yet
        self.heard = 0  # PCM bytes fed while not held

    def begin_reply(self, *, held: bool = False) -> None:
        self.replies += 1
        self._playing = True
        self.held = held

    def release(self) -> None:
        self.held = False

    def feed(self, pcm: bytes, sample_format: str = "s16le") -> None:
        self.pcm += pcm
        if not self.held:
            self.heard += len(pcm)

    def finish(self) -> None:
        self._playing = False

    async def wait_done(self) -> None:
        return None

    def interrupt(self) -> float:
        self.calls.append("interrupt")
        self._playing = False
        return 0.0

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def first_packet_sent_at(self) -> float | None:
        return None

    @property
    def first_packet_ready_at(self) -> float | None:
        return None

    @property
    def played_seconds(self) -> float:
        return 0.0


class Alone:
    """One human in the channel: everything said is for the bot."""

    def display_name(self, user_id: int) -> str:
        return f"member{user_id}"

    def humans_in_channel(self) -> int:
        return 1

    def names_in_channel(self) -> list[str]:
        return ["member7"]


class Crowd(Alone):
    def humans_in_channel(self) -> int:
        return 3
