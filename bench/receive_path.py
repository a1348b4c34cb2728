"""CPU cost of the receive path per speaker: transport decrypt → DAVE decrypt → Opus decode →
downmix/resample, through the real ``VoiceReceiver`` (jitter, stats and hand-off included), against
the C floor measured in the same run.

The floor (``floor``) is the same C calls per frame, in the same order, with nothing else: the
libsodium AEAD call on preallocated buffers, davey's decrypt, raw ``opus_decode`` through ctypes
into a preallocated buffer, the numpy downmix into preallocated arrays and soxr's
``resample_chunk``, in one loop over the packets. Interleaving them per frame (rather than
timing each library in its own loop) keeps the cache effects of switching libraries in the
floor, so ``receive_vs_floor`` = full path / floor is what our Python costs on top. The steps
are also timed one library at a time (``us_per_frame``), as before.

``--decode 16k`` measures the receive path decoding Opus straight to 16 kHz mono (libopus'
band-limited decode, ``docs/decisions.md``), against the floor of that path (no resampler).

Packets are realistic: synthetic voiced speech encoded by libopus at 64 kbit/s (~130 bytes per
20 ms), DAVE-encrypted by a member of a real MLS group, sealed with aead_xchacha20_poly1305_rtpsize
and a one-byte header extension, like a Discord client sends them.

    .venv/bin/python -m bench.receive_path [--seconds 10] [--passes 7] [--no-profile] [--decode 48k|16k]

Prints a table, a profile of one pass, and a final JSON line with the numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import io
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable

import davey
import numpy as np
import soxr

from bot.audio.frames import STT_CHANNELS, STT_SAMPLE_RATE
from bot.audio.opus import MAX_FRAME_SAMPLES, OpusDecoder, load_libopus
from bot.audio.resample import AlreadyMono16k, DownmixResampler
from bot.voice.receiver import Decoder, Resampler, VoiceReceiver
from bot.voice.transport import make_decryptor
from tests.fakes.voice.packets import (
    ALICE_ID,
    ALICE_SSRC,
    SILENCE,
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


MODES: dict[str, tuple[Callable[[], Decoder], Callable[[], Resampler]]] = {
    "48k": (OpusDecoder, DownmixResampler),
    "16k": (lambda: OpusDecoder(sample_rate=STT_SAMPLE_RATE, channels=STT_CHANNELS), AlreadyMono16k),
}


def build(frames: int, opus: list[bytes], mode: str = "48k"):
    """A fresh connection + receiver + packets (DAVE refuses replayed nonces, so one set per pass)."""
    group = dave_group()
    connection = FakeConnection(dave_session=group.bot, dave_protocol_version=1)
    key = connection.key
    payloads = [group.member.encrypt_opus(p) for p in opus]
    packets = [seal(key, i, i * 960, ALICE_SSRC, payloads[i], counter=i) for i in range(frames)]
    decoder, resampler = MODES[mode]
    receiver = VoiceReceiver(connection, batch_interval=0, decoder_factory=decoder, resampler_factory=resampler)
    receiver.start(sink=None, loop=_NullLoop())  # type: ignore[arg-type]
    receiver.map_ssrc(ALICE_SSRC, ALICE_ID)
    # The speaker's decoder, resampler and jitter buffer are made on its first packet, once per
    # talker, not per frame: a silence frame just before the timed ones makes them (the floor
    # creates its decoder and soxr stream before its timer too).
    receiver.on_packet(seal(key, 0xFFFF, -960 & 0xFFFFFFFF, ALICE_SSRC, SILENCE, counter=frames))
    return group, connection, receiver, packets, payloads


def cpu_per_frame(fn, frames: int) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) / frames * 1e6


def floor_per_frame(packets: list[bytes], key: bytes, session: davey.DaveSession, mode: str) -> float:
    """The C calls of one frame, in order, per packet, with preallocated buffers and no other work:
    libsodium's AEAD, davey, libopus, numpy's downmix and soxr (no downmix or soxr at 16k)."""
    from nacl._sodium import ffi, lib  # noqa: PLC0415  # the binding transport.py uses

    sodium = lib.crypto_aead_xchacha20poly1305_ietf_decrypt
    out, mlen = ffi.new("unsigned char[]", 2048), ffi.new("unsigned long long *")
    nonce = bytearray(24)
    nonce_ptr = ffi.from_buffer(nonce)
    aad, ext = 16, 4  # fixed header + extension preamble; one 4-byte extension element
    libopus = load_libopus()
    rate, channels = (48_000, 2) if mode == "48k" else (STT_SAMPLE_RATE, STT_CHANNELS)
    error = ctypes.c_int(0)
    state = libopus.opus_decoder_create(rate, channels, ctypes.byref(error))
    samples = MAX_FRAME_SAMPLES * rate // 48_000
    pcm = (ctypes.c_int16 * (samples * channels))()
    pcm_addr = ctypes.addressof(pcm)
    pcm_view = np.frombuffer(pcm, dtype=np.int16)
    opus_decode = libopus.opus_decode
    stream = soxr.ResampleStream(48_000, STT_SAMPLE_RATE, 1, dtype="int16", quality="HQ")
    resample = stream.resample_chunk
    wide, mono = np.empty(960, dtype=np.int32), np.empty(960, dtype=np.int16)
    add, shift = np.add, np.right_shift
    user, audio = ALICE_ID, davey.MediaType.audio
    stereo = mode == "48k"
    start = time.process_time()
    for packet in packets:
        n = len(packet)
        nonce[:4] = packet[n - 4 :]
        sodium(out, mlen, ffi.NULL, ffi.from_buffer(packet) + aad, n - aad - 4, packet, aad, nonce_ptr, key)
        frame = session.decrypt(user, audio, ffi.buffer(out, mlen[0])[ext:])
        got = opus_decode(state, frame, len(frame), pcm_addr, samples, 0)
        if stereo:
            interleaved = pcm_view[: got * 2]
            add(interleaved[0::2], interleaved[1::2], out=wide, dtype=np.int32)
            shift(wide, 1, out=mono, casting="unsafe")
            resample(mono)
    elapsed = time.process_time() - start
    libopus.opus_decoder_destroy(state)
    return elapsed / len(packets) * 1e6


def machine_floor(seconds: float = 5.0, passes: int = 3) -> float:
    """The C floor of one received frame (µs, median of ``passes``): how fast this machine is
    right now, for benchmarks whose figures scale with it (bench.scaling reports it beside the
    50-guild latency, which on 2 cores measures a queue once the machine is too slow)."""
    frames = int(seconds / FRAME_S)
    opus = opus_packets(frames, seed=7)
    floors = []
    for _ in range(passes):
        group, connection, _, packets, _ = build(frames, opus)
        floors.append(floor_per_frame(packets, connection.key, group.bot, "48k"))
    return round(statistics.median(floors), 2)


def run(seconds: float, passes: int, profile: bool, mode: str = "48k") -> dict[str, object]:
    frames = int(seconds / FRAME_S)
    opus = opus_packets(frames, seed=7)
    sizes = [len(p) for p in opus]
    steps: dict[str, list[float]] = {
        "transport": [], "dave": [], "opus_decode": [], "resample": [], "full": []
    }  # fmt: skip
    floors: list[float] = []
    audio = davey.MediaType.audio
    decoder_factory, resampler_factory = MODES[mode]
    for _ in range(passes):
        group, connection, _, packets, payloads = build(frames, opus, mode)
        floors.append(floor_per_frame(packets, connection.key, group.bot, mode))
        group, connection, _, packets, payloads = build(frames, opus, mode)
        transport = make_decryptor(XCHACHA, connection.key)
        session = group.bot
        steps["transport"].append(
            cpu_per_frame(lambda t=transport, ps=packets: [t.decrypt(p) for p in ps], frames)
        )
        steps["dave"].append(
            cpu_per_frame(lambda s=session, ps=payloads: [s.decrypt(ALICE_ID, audio, p) for p in ps], frames)
        )
        decoder = decoder_factory()
        pcm: list[bytes] = []
        steps["opus_decode"].append(
            cpu_per_frame(lambda d=decoder, out=pcm: out.extend(d.decode(p) for p in opus), frames)
        )
        decoder.close()
        resampler = resampler_factory()
        steps["resample"].append(
            cpu_per_frame(lambda r=resampler, xs=pcm: [r.process(x) for x in xs], frames)
        )

        _, _, receiver, packets, _ = build(frames, opus, mode)
        steps["full"].append(
            cpu_per_frame(lambda r=receiver, ps=packets: [r.on_packet(p) for p in ps], frames)
        )
        stats = receiver.stats
        assert stats.decoded == frames + 1 and stats.dave.decrypted == frames, stats.snapshot()
        assert stats.internal_errors == 0 and stats.transport_failures == 0
        receiver.handoff.deliver()  # no sink: drops what the pass queued

    med = {k: statistics.median(v) for k, v in steps.items()}
    full = med["full"]
    floor = statistics.median(floors)
    result: dict[str, object] = {
        "decode": mode,
        "frames_per_pass": frames,
        "passes": passes,
        "floor_us_per_frame": round(floor, 2),
        "full_us_per_frame": round(full, 2),
        "receive_vs_floor": round(full / floor, 3),
        "floor_speakers_per_core": int(FRAME_S * 1e6 / floor),
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
    print(f"  C floor      {floor:8.2f} µs/frame (the same C calls interleaved per frame, nothing else)")
    print(f"  receive_vs_floor {result['receive_vs_floor']}  (goal ≤ 1.2)")
    print(f"  → {result['speaker_seconds_per_cpu_second']} speaker-seconds per CPU-second, "
          f"≈{result['concurrent_speakers_per_core']} concurrent speakers per core")

    if profile:
        _, _, receiver, packets, _ = build(frames, opus, mode)
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
    parser.add_argument("--decode", choices=sorted(MODES), default="48k", help="receive decode mode")
    args = parser.parse_args()
    result = run(args.seconds, args.passes, not args.no_profile, args.decode)
    print(json.dumps({"bench": "receive_path", **result}))


if __name__ == "__main__":
    main()
