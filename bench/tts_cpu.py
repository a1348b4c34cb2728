"""CPU of the bot's event loop per streamed TTS chunk (issue 15: needless work per chunk).

    .venv/bin/python -m bench.tts_cpu [--replies 10] [--as-shipped]

The fake Mistral runs on its own event loop in another thread; the product's ``SpeechSynthesizer``
streams ``--replies`` replies from it (8 KB SSE events of 62 ms of float32 audio, the fake's
default), and only the client thread's CPU time is counted (``time.thread_time``), so the fake's
work and a loaded machine's other processes stay out of it (contention still slows each
instruction). ``--as-shipped`` leaves the SDK without ``install_sdk_speedups``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from typing import Any

import httpx2
from mistralai.client import Mistral

from bot.audio.frames import PcmFrame
from bot.mistral import RetryPolicy, SpeechSynthesizer
from bot.mistral.sdk_speedups import install_sdk_speedups
from tests.fakes.mistral import FakeMistral

TEXT = "This is a reasonably long sentence that the bot would speak as part of its answer to you. " * 2


def _serve(ready: threading.Event, box: list[FakeMistral], stop: threading.Event) -> None:
    async def main() -> None:
        async with FakeMistral() as fake:
            box.append(fake)
            ready.set()
            while not stop.is_set():  # noqa: ASYNC110  (a thread's flag, not an asyncio event)
                await asyncio.sleep(0.05)

    asyncio.run(main())


async def _client(fake: FakeMistral, replies: int, *, as_shipped: bool) -> dict[str, Any]:
    tls = fake.certificates.client_context()
    if not as_shipped:
        install_sdk_speedups(tls=tls)
    async with httpx2.AsyncClient(verify=tls) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        tts = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=RetryPolicy())

        async def reply(text: str) -> list[PcmFrame]:
            return [frame async for frame in tts.synthesize(text, ref_audio=None, voice_id=None)]

        await reply("warm up")
        started = time.thread_time()
        frames = [frame for _ in range(replies) for frame in await reply(TEXT)]
        cpu = time.thread_time() - started
    seconds = sum(frame.duration for frame in frames)
    return {"chunks": len(frames), "audio_s": round(seconds, 1),
            "cpu_us_per_chunk": round(1e6 * cpu / len(frames), 1),
            "cpu_ms_per_audio_s": round(1000 * cpu / seconds, 2)}


def measure(replies: int, *, as_shipped: bool = False) -> dict[str, Any]:
    ready, box, stop = threading.Event(), [], threading.Event()
    server = threading.Thread(target=_serve, args=(ready, box, stop), name="fake-mistral")
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the fake Mistral did not start")
        return asyncio.run(_client(box[0], replies, as_shipped=as_shipped))
    finally:
        stop.set()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=10)
    parser.add_argument("--as-shipped", action="store_true", help="without install_sdk_speedups")
    args = parser.parse_args()
    print(json.dumps(measure(args.replies, as_shipped=args.as_shipped)))


if __name__ == "__main__":
    main()
