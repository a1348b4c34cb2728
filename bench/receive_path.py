"""CPU cost of the receive path per speaker: transport decrypt → DAVE decrypt → Opus decode →
downmix/resample, through the real ``VoiceReceiver`` (jitter, stats and hand-off included).

Packets are realistic: synthetic voiced speech encoded by libopus at 64 kbit/s (~130 bytes per
20 ms), DAVE-encrypted by a member of a real MLS group, sealed with aead_xchacha20_poly1305_rtpsize
and a one-byte header extension, like a Discord client sends them.

    .venv/bin/python bench/receive_path.py [--seconds 10] [--passes 7] [--no-profile]

Prints a table, a profile of one pass, and a final JSON line with the numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import time

import davey

from bot.audio.opus import OpusDecoder
from bot.audio.resample import DownmixResampler
from bot.voice.receiver import VoiceReceiver
from bot.voice.transport import make_decryptor
from tests.fakes.voice.packets import (
    ALICE_ID,
    ALICE_SSRC,
    XCHACHA,
    FakeConnection,
    dave_group,
    opus_packets,
    seal,
)

FRAME_S = 0.020


class _NullLoop:
    def call_soon_threadsafe(self, callback, *args):
        return None


def build(frames: int, opus: list[bytes]):
    """A fresh connection + receiver + packets (DAVE refuses replayed nonces, so one set per pass)."""
    group = dave_group()
    connection = FakeConnection(dave_session=group.bot, dave_protocol_version=1)
    key = connection.key
    payloads = [group.member.encrypt_opus(p) for p in opus]
    packets = [seal(key, i, i * 960, ALICE_SSRC, payloads[i], counter=i) for i in range(frames)]
    receiver = VoiceReceiver(connection, batch_interval=0)
    receiver.start(sink=None, loop=_NullLoop())  # type: ignore[arg-type]
    receiver.map_ssrc(ALICE_SSRC, ALICE_ID)
    return group, connection, receiver, packets, payloads


def cpu_per_frame(fn, frames: int) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) / frames * 1e6


def run(seconds: float, passes: int, profile: bool) -> dict[str, object]:
    frames = int(seconds / FRAME_S)
    opus = opus_packets(frames, seed=7)
    sizes = [len(p) for p in opus]
    steps: dict[str, list[float]] = {
        "transport": [], "dave": [], "opus_decode": [], "resample": [], "full": []
    }  # fmt: skip
    audio = davey.MediaType.audio
    for _ in range(passes):
        group, connection, _, packets, payloads = build(frames, opus)
        transport = make_decryptor(XCHACHA, connection.key)
        session = group.bot
        steps["transport"].append(
            cpu_per_frame(lambda t=transport, ps=packets: [t.decrypt(p) for p in ps], frames)
        )
        steps["dave"].append(
            cpu_per_frame(lambda s=session, ps=payloads: [s.decrypt(ALICE_ID, audio, p) for p in ps], frames)
        )
        decoder = OpusDecoder()
        pcm: list[bytes] = []
        steps["opus_decode"].append(
            cpu_per_frame(lambda d=decoder, out=pcm: out.extend(d.decode(p) for p in opus), frames)
        )
        decoder.close()
        resampler = DownmixResampler()
        steps["resample"].append(
            cpu_per_frame(lambda r=resampler, xs=pcm: [r.process(x) for x in xs], frames)
        )

        _, _, receiver, packets, _ = build(frames, opus)
        steps["full"].append(
            cpu_per_frame(lambda r=receiver, ps=packets: [r.on_packet(p) for p in ps], frames)
        )
        stats = receiver.stats
        assert stats.decoded == frames and stats.dave.decrypted == frames, stats.snapshot()
        assert stats.internal_errors == 0 and stats.transport_failures == 0
        receiver.handoff.deliver()  # no sink: drops what the pass queued

    med = {k: statistics.median(v) for k, v in steps.items()}
    full = med["full"]
    result: dict[str, object] = {
        "frames_per_pass": frames,
        "passes": passes,
        "opus_bytes_mean": round(statistics.mean(sizes), 1),
        "us_per_frame": {k: round(v, 2) for k, v in med.items()},
        "us_per_frame_glue": round(full - sum(v for k, v in med.items() if k != "full"), 2),
        "speaker_seconds_per_cpu_second": round(FRAME_S * 1e6 / full, 1),
        "concurrent_speakers_per_core": int(FRAME_S * 1e6 / full),
        "cpu": os.cpu_count(),
    }
    print(f"{frames} frames/pass, {passes} passes, mean Opus packet {result['opus_bytes_mean']} bytes")
    for name, value in med.items():
        low, high = min(steps[name]), max(steps[name])
        print(f"  {name:12s} {value:8.2f} µs/frame   (min {low:.2f}, max {high:.2f})")
    print(f"  python glue  {result['us_per_frame_glue']:8.2f} µs/frame (full - sum of the C-library steps)")
    print(f"  → {result['speaker_seconds_per_cpu_second']} speaker-seconds per CPU-second, "
          f"≈{result['concurrent_speakers_per_core']} concurrent speakers per core")

    if profile:
        _, _, receiver, packets, _ = build(frames, opus)
        profiler = cProfile.Profile()
        profiler.enable()
        for p in packets:
            receiver.on_packet(p)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
        print("\nProfile of one full pass (cProfile adds its own per-call overhead; read the shares):")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:4000])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per pass")
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    result = run(args.seconds, args.passes, not args.no_profile)
    print(json.dumps({"bench": "receive_path", **result}))


if __name__ == "__main__":
    main()
