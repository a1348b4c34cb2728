"""The FFmpeg locator, the player's FFmpeg command line, and the frame dataclass."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import time

import numpy as np
import pytest

from bot.audio.ffmpeg import INPUT_BLOCK_BYTES, INPUT_SAMPLE_BYTES, ffmpeg_args, ffmpeg_executable, wav_stream_header
from bot.audio.frames import DISCORD_FRAME_BYTES, STT_FRAME_BYTES, PcmFrame


def test_bundled_ffmpeg_runs_and_has_the_libopus_encoder() -> None:
    exe = ffmpeg_executable()
    assert os.access(exe, os.X_OK)
    result = subprocess.run(
        [exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "libopus" in result.stdout


def test_override_wins_when_passed_and_must_exist(tmp_path) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert ffmpeg_executable(str(fake)) == str(fake)
    with pytest.raises(FileNotFoundError, match="FFMPEG_BINARY"):
        ffmpeg_executable(str(tmp_path / "missing"))


def test_environment_is_not_read_implicitly(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FFMPEG_BINARY", str(tmp_path / "missing"))
    assert ffmpeg_executable() != str(tmp_path / "missing")


def test_pcm_frame_validates_and_reports_duration() -> None:
    frame = PcmFrame(bytes(DISCORD_FRAME_BYTES), 48_000, 2)
    assert (frame.samples, frame.duration) == (960, 0.02)
    assert PcmFrame(bytes(STT_FRAME_BYTES), 16_000, 1).duration == 0.02
    with pytest.raises(ValueError):
        PcmFrame(b"\x00" * 3, 16_000, 1)
    with pytest.raises(ValueError):
        PcmFrame(b"", 0, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.sample_rate = 8000  # type: ignore[misc]


def test_command_is_low_latency_opus_in_nut_from_a_float_wav_stream() -> None:
    args = ffmpeg_args("ffmpeg-exe")
    assert args[0] == "ffmpeg-exe"
    joined = " ".join(args)
    for flag in (
        "-f wav", "-max_size 1920", "-ignore_length 1", "-probesize 32", "-analyzeduration 0",
        "-i pipe:", "-f nut", "-acodec libopus", "-ar 24000", "-ac 2",
        "-frame_duration 20", "-application voip", "-flush_packets 1", "-fec 1", "-compression_level 5",
    ):  # fmt: skip
        assert flag in joined
    assert joined.index("-f wav") < joined.index("-i pipe:") < joined.index("-f nut")
    assert "nobuffer" not in joined  # it drops the block the probe read


def test_wav_stream_header_is_read_as_float_mono_at_the_tts_rate() -> None:
    import av  # noqa: PLC0415 - only this test decodes

    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2400) / 24_000)).astype("<f4")
    with av.open(io.BytesIO(wav_stream_header() + tone.tobytes()), format="wav",
                 options={"ignore_length": "1"}) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels, stream.codec_context.name) == (24_000, 1, "pcm_f32le")
        decoded = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])
    np.testing.assert_array_equal(decoded, tone)


def test_mono_speech_plays_on_both_channels_of_discord_s_stereo_decoder_at_the_tts_level() -> None:
    from bot.audio.opus import OpusDecoder  # noqa: PLC0415 - only this test decodes Opus
    from bot.voice.opus_source import StreamingOpusSource  # noqa: PLC0415

    rate = 24_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype("<i2")
    source = StreamingOpusSource(executable=ffmpeg_executable())
    source.feed(tone.tobytes())
    source.finish()
    packets = []
    while packet := source.read():
        packets.append(packet)
    source.cleanup()
    voiced = [p for p in packets if len(p) > 3]
    assert len(voiced) >= 45
    assert all(packet[0] & 0x04 for packet in voiced)  # TOC "s" bit: coded stereo, as Discord asks
    decoder = OpusDecoder()  # 48 kHz stereo, as Discord decodes
    pcm = np.frombuffer(b"".join(decoder.decode(p) for p in voiced), "<i2").reshape(-1, 2)
    middle = pcm[len(pcm) // 4 : 3 * len(pcm) // 4].astype(np.float64) / 32768
    np.testing.assert_array_equal(middle[:, 0], middle[:, 1])
    assert np.sqrt(np.mean(middle[:, 0] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # unity gain


def test_the_reply_s_first_samples_are_encoded_and_come_out_after_libopus_look_ahead_only() -> None:
    # With "-fflags nobuffer" the packet the probe reads (the first input block) was dropped: every
    # reply lost its first 5 ms, and the decoded speech came 1.4 ms after the source instead of 6.5.
    from bot.audio.opus import OpusDecoder  # noqa: PLC0415 - only this test decodes Opus
    from bot.voice.nut import NutParser  # noqa: PLC0415
    from tests.fakes.synth import speech_like  # noqa: PLC0415

    rate = 24_000
    speech = speech_like(1.0, rate, level=0.5)
    nut = subprocess.run(ffmpeg_args(ffmpeg_executable()), input=wav_stream_header() + speech.astype("<f4").tobytes(),
                         capture_output=True, timeout=60, check=True).stdout
    decoder = OpusDecoder(sample_rate=rate, channels=1)
    decoded = np.frombuffer(b"".join(decoder.decode(p) for p in NutParser().feed(nut)), "<i2") / 32768.0
    assert decoded.size >= speech.size
    core = speech[400:-400]
    lags = [float(np.dot(core, decoded[400 + lag : 400 + lag + core.size])) for lag in range(-400, 401)]
    assert int(np.argmax(lags)) - 400 == pytest.approx(rate * 0.0065, abs=3)  # libopus' 6.5 ms look-ahead


def test_each_packet_comes_as_soon_as_its_frame_is_written_in_whatever_pieces() -> None:
    # FFmpeg's input blocks are whole Opus frames from the stream's start: a block that straddled
    # frames would keep a complete frame's end in the demuxer until the next block filled up.
    from bot.voice.nut import NutParser  # noqa: PLC0415
    from bot.voice.opus_source import FRAME_INPUT_SAMPLES  # noqa: PLC0415

    assert INPUT_BLOCK_BYTES == FRAME_INPUT_SAMPLES * INPUT_SAMPLE_BYTES
    speech = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2000) / 24_000)).astype("<f4").tobytes()
    process = subprocess.Popen(ffmpeg_args(ffmpeg_executable()), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    parser, packets = NutParser(), []

    def packets_after(seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if data := process.stdout.read():  # type: ignore[union-attr]
                packets.extend(parser.feed(data))
            time.sleep(0.005)
        return len(packets)

    try:
        written = 0
        process.stdin.write(wav_stream_header())
        for samples, expected in ((300, 0), (400, 1), (250, 1), (10, 2), (1000, 4)):  # 300, 700, 950, 960, 1960
            process.stdin.write(speech[written * 4 : (written + samples) * 4])
            process.stdin.flush()
            written += samples
            assert packets_after(0.5) == expected, f"after {written} samples"
    finally:
        process.kill()
        process.wait()
