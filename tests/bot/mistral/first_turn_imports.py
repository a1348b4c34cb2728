"""Run in a fresh interpreter by test_preload.py: one chat stream, one TTS stream and one realtime
transcription against the fake Mistral, then print (as JSON) the SDK and connection modules that
were first imported during them. ``--preload`` calls ``preload_sdk`` first, as the bot does."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from mistralai.client import Mistral  # noqa: E402

from bot.mistral import ChatMessage, ChatModel, RetryPolicy, SpeechSynthesizer, StreamingTranscriber  # noqa: E402
from bot.mistral.sdk_preload import preload_sdk  # noqa: E402
from tests.fakes.mistral import FakeMistral  # noqa: E402

WATCHED = ("mistralai", "anyio", "httpcore2", "httpx2", "websockets", "jsonpath")


async def main() -> None:
    async with FakeMistral() as fake:
        # HTTPS/WSS as in production, so the TLS modules a first turn needs are counted too.
        os.environ["SSL_CERT_FILE"] = str(fake.certificates.ca_file)
        fake.reply = lambda _messages: "Hello there."
        fake.transcribe = lambda _audio: "hi"
        client = Mistral(api_key=fake.api_key, server_url=fake.url)
        if "--preload" in sys.argv:
            preload_sdk(client)
        retry = RetryPolicy(max_attempts=1, max_total_seconds=5.0)
        before = set(sys.modules)

        async def silence() -> object:
            yield b"\0" * 6400

        await StreamingTranscriber(client, realtime_model="voxtral-mini-transcribe-realtime-2602",
                                   batch_model="voxtral-mini-latest", retry=retry).transcribe(silence())
        async for _ in ChatModel(client, model="mistral-small-latest", retry=retry).stream(
                [ChatMessage(role="user", content="hi")], max_tokens=20):
            pass
        async for _ in SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=retry).synthesize(
                "Hello.", ref_audio=None, voice_id=None):
            pass
        print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith(WATCHED))))


asyncio.run(main())
