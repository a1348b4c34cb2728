"""Decode Opus straight to 16 kHz mono, or at 48 kHz stereo then downmix + soxr? (issue 15, floor)

    .venv/bin/python -m bench.decode16k [--bitrates 64000 32000] [--passes 5] [--json]

Today's path (A): ``OpusDecoder`` at 48 kHz stereo → ``DownmixResampler`` (int downmix, soxr HQ)
→ 16 kHz mono. The candidate (B): a libopus decoder created at 16 kHz, 1 channel, which decodes
band-limited at that rate (CELT synthesises only the bands below 8 kHz, SILK skips its output
resampler) and downmixes a stereo stream itself.

Speech: the corpus' speech clips (tests/fakes/vad_corpus) upsampled to 48 kHz, with "air" added
above 8 kHz (band-passed noise following the speech envelope, 20 dB under it: sibilance a real
microphone picks up, which B must drop cleanly rather than alias), plus Debian's alsa-utils
48 kHz recordings when /usr/share/sounds/alsa is present. Music and noise clips go through both
paths too, for the VAD's false accepts. Everything is encoded as a Discord client would: 48 kHz
stereo Opus, 20 ms frames, application "audio", at each bitrate.

Measured on speech, in the 0–8 kHz band:
- SNR of B against A (A is the reference the recogniser hears today), after aligning B to A by
  cross-correlation (the paths' delays differ by a few samples);
- log-spectral distance (dB, 32 ms Hann frames, frames within 40 dB of the clip's peak), B vs A in
  0–7 kHz (soxr's passband) and 7–8 kHz, and each path against the clean 16 kHz source;
- ``GatedSileroVad`` per-frame verdicts on both paths: agreement, speech recall, turns opened,
  and false accepts on music and noise;
- µs per 20 ms frame of each path (best of ``--passes``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np
import soxr

from bot.audio.frames import FRAME_SAMPLES, STT_FRAME_SAMPLES
from bot.audio.opus import OpusDecoder, OpusEncoder
from bot.audio.resample import DownmixResampler
from bot.audio.utterances import SpeechStarted, UtteranceSegmenter
from bot.audio.vad import GatedSileroVad
from tests.fakes.vad_corpus import Clip, music_clips, noise_clips, speech_clips, speech_labels

ALSA = Path("/usr/share/sounds/alsa")
HI = 48_000
LO = 16_000


def _air(speech48: np.ndarray, seed: int) -> np.ndarray:
    """8–16 kHz noise following the speech's 10 ms envelope, 20 dB under the speech RMS."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(speech48.size)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(noise.size, 1 / HI)
    spectrum[(freqs < 8000) | (freqs > 16000)] = 0
    band = np.fft.irfft(spectrum, noise.size)
    hop = HI // 100
    env = np.sqrt(np.convolve(speech48**2, np.ones(hop) / hop, "same"))
    air = band / (np.std(band) or 1.0) * env
    return air * 0.1


def sources() -> list[tuple[str, np.ndarray]]:
    """(name, float 48 kHz mono in [-1, 1]) speech sources."""
    out = []
    for i, clip in enumerate(speech_clips()):
        x48 = soxr.resample(clip.pcm.astype(np.float64) / 32768.0, LO, HI)
        out.append((clip.name + "+air", x48 + _air(x48, i)))
    for path in sorted(ALSA.glob("*.wav")) if ALSA.is_dir() else []:
        if path.stem == "Noise":
            continue
        with wave.open(str(path), "rb") as w:
            if w.getframerate() != HI or w.getnchannels() != 1:
                continue
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        out.append((f"alsa48k_{path.stem}", pcm.astype(np.float64) / 32768.0))
    return out


def ideal_16k(x48: np.ndarray) -> np.ndarray:
    """The source's 0–8 kHz content at 16 kHz with a brick-wall filter: the reference that no
    resampler's transition band colours."""
    n = x48.size - x48.size % 3
    spectrum = np.fft.rfft(x48[:n])
    keep = n // 3 // 2 + 1
    return np.fft.irfft(spectrum[:keep], n // 3) / 3


def aliasing(bitrate: int) -> tuple[float, float]:
    """Output level (dBFS) of each path for input that is only 8–16 kHz noise at -20 dBFS:
    whatever comes out below 8 kHz is aliasing or codec leakage."""
    air = np.random.default_rng(21).standard_normal(HI * 3)
    spectrum = np.fft.rfft(air)
    freqs = np.fft.rfftfreq(air.size, 1 / HI)
    spectrum[(freqs < 8500) | (freqs > 16000)] = 0
    band = np.fft.irfft(spectrum, air.size)
    band *= 0.1 / np.std(band)
    packets = encode(band, bitrate)
    levels = []
    for out in (path_a(packets), path_b(packets)):
        x = out[LO // 2 :].astype(np.float64) / 32768  # skip the codec's start-up
        levels.append(10 * np.log10(float(np.mean(x**2)) + 1e-12))
    return levels[0], levels[1]


def encode(x48: np.ndarray, bitrate: int, *, right_gain: float = 1.0) -> list[bytes]:
    """48 kHz stereo Opus packets; ``right_gain`` < 1 pans the voice left (a real stereo stream,
    which the 16 kHz mono decoder must downmix itself)."""
    mono = x48[: x48.size - x48.size % FRAME_SAMPLES]
    pair = np.stack((mono, mono * right_gain), axis=1).reshape(-1)
    stereo = np.clip(np.round(pair * 32767), -32768, 32767).astype(np.int16)
    with OpusEncoder(application="audio", bitrate=bitrate) as enc:
        step = 2 * FRAME_SAMPLES
        return [enc.encode(stereo[i : i + step].tobytes()) for i in range(0, stereo.size, step)]


def path_a(packets: list[bytes]) -> np.ndarray:
    dec, res = OpusDecoder(), DownmixResampler()
    out = b"".join(res.process(dec.decode(p)) for p in packets) + res.flush()
    return np.frombuffer(out, dtype=np.int16)


def path_b(packets: list[bytes]) -> np.ndarray:
    dec = OpusDecoder(sample_rate=LO, channels=1)
    return np.frombuffer(b"".join(dec.decode(p) for p in packets), dtype=np.int16)


def align(ref: np.ndarray, x: np.ndarray, max_lag: int = 64) -> tuple[np.ndarray, np.ndarray, int]:
    """Shift ``x`` by the lag (±max_lag samples) that best matches ``ref``; trim both to overlap."""
    r, y = ref.astype(np.float64), x.astype(np.float64)
    n = min(r.size, y.size) - 2 * max_lag
    core = r[max_lag : max_lag + n]
    best = max(range(-max_lag, max_lag + 1), key=lambda lag: float(np.dot(core, y[max_lag + lag : max_lag + lag + n])))
    return core, y[max_lag + best : max_lag + best + n], best


def snr_db(ref: np.ndarray, x: np.ndarray, below_hz: float = LO / 2 + 1) -> float:
    """SNR of ``x`` against ``ref`` counting only content below ``below_hz``."""
    r, d = np.fft.rfft(ref), np.fft.rfft(ref - x)
    sel = np.fft.rfftfreq(ref.size, 1 / LO) < below_hz
    return 10 * np.log10(float(np.sum(np.abs(r[sel]) ** 2)) / (float(np.sum(np.abs(d[sel]) ** 2)) + 1e-9))


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / LO)
    return 10 * np.log10(float(spectrum[(freqs >= lo) & (freqs < hi)].sum()) + 1e-9)


def _spectra(x: np.ndarray) -> np.ndarray:
    n, hop = 512, 256
    win = np.hanning(n)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * win
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-3  # floor ~ -100 dB re full scale² x n


def lsd_db(ref: np.ndarray, x: np.ndarray, band: tuple[float, float]) -> float:
    pr, px = _spectra(ref), _spectra(x)
    freqs = np.fft.rfftfreq(512, 1 / LO)
    sel = (freqs >= band[0]) & (freqs < band[1])
    energy = pr.sum(axis=1)
    active = 10 * np.log10(energy) > 10 * np.log10(energy.max()) - 40
    d = 10 * np.log10(pr[active][:, sel]) - 10 * np.log10(px[active][:, sel])
    return float(np.mean(np.sqrt(np.mean(d**2, axis=1))))


def vad_verdicts(pcm: np.ndarray) -> np.ndarray:
    vad = GatedSileroVad()
    n = pcm.size - pcm.size % STT_FRAME_SAMPLES
    return np.array([vad.is_speech(pcm[i : i + STT_FRAME_SAMPLES].tobytes()) for i in range(0, n, STT_FRAME_SAMPLES)])


def opens(pcm: np.ndarray) -> bool:
    now = [0.0]
    seg = UtteranceSegmenter(GatedSileroVad(), clock=lambda: now[0])
    n = pcm.size - pcm.size % STT_FRAME_SAMPLES
    for k, i in enumerate(range(0, n, STT_FRAME_SAMPLES)):
        now[0] = k * 0.02
        if any(isinstance(e, SpeechStarted) for e in seg.push(pcm[i : i + STT_FRAME_SAMPLES].tobytes(), now[0])):
            return True
    return False


def timing(packets: list[bytes], passes: int) -> dict[str, float]:
    best_a = best_b = float("inf")
    for _ in range(passes):
        dec, res = OpusDecoder(), DownmixResampler()
        t = time.perf_counter_ns()
        for p in packets:
            res.process(dec.decode(p))
        best_a = min(best_a, (time.perf_counter_ns() - t) / 1e3 / len(packets))
        dec16 = OpusDecoder(sample_rate=LO, channels=1)
        t = time.perf_counter_ns()
        for p in packets:
            dec16.decode(p)
        best_b = min(best_b, (time.perf_counter_ns() - t) / 1e3 / len(packets))
    return {"us_per_frame_48k_path": best_a, "us_per_frame_16k_decode": best_b}


def study(bitrate: int, passes: int) -> dict[str, float]:
    rows = []
    all_packets: list[bytes] = []
    panned = ("panned L", sources()[0][1])
    for name, x48 in [*sources(), panned]:
        packets = encode(x48, bitrate, right_gain=0.3 if name == "panned L" else 1.0)
        all_packets += packets
        a, b = path_a(packets), path_b(packets)
        gain = 0.65 if name == "panned L" else 1.0  # what the (L + R) / 2 downmix leaves of it
        ref16 = np.clip(np.round(ideal_16k(x48) * 32767 * gain), -32768, 32767)
        ra, rb, lag = align(a, b)
        # The encoder's look-ahead (6.5 ms = 104 samples at 16 kHz) delays both paths vs the source.
        sa, aa, _ = align(ref16, a, 400)
        sb, bb, _ = align(ref16, b, 400)
        va, vb = vad_verdicts(a), vad_verdicts(b)
        labels = speech_labels(a.astype(np.int16))[: min(va.size, vb.size)]
        va, vb = va[: labels.size], vb[: labels.size]
        rows.append({
            "clip": name, "lag": lag, "snr_b_vs_a": snr_db(ra, rb), "snr_b_vs_a_0_7k": snr_db(ra, rb, 7000),
            "top_a_vs_src": band_db(aa, 7300, 8001) - band_db(sa, 7300, 8001),
            "top_b_vs_src": band_db(bb, 7300, 8001) - band_db(sb, 7300, 8001),
            "lsd_0_7k": lsd_db(ra, rb, (0, 7000)), "lsd_7_8k": lsd_db(ra, rb, (7000, 8001)),
            "lsd_a_vs_src": lsd_db(sa, aa, (0, 7000)), "lsd_b_vs_src": lsd_db(sb, bb, (0, 7000)),
            "snr_a_vs_src": snr_db(sa, aa, 7000), "snr_b_vs_src": snr_db(sb, bb, 7000),
            "vad_agree": float((va == vb).mean()),
            "recall_a": float(va[labels].mean()), "recall_b": float(vb[labels].mean()),
            "opens_a": opens(a), "opens_b": opens(b),
        })
    non_speech: list[Clip] = music_clips() + noise_clips()
    fa_a, fa_b, open_a, open_b = [], [], 0, 0
    for clip in non_speech:
        x48 = soxr.resample(clip.pcm.astype(np.float64) / 32768.0, LO, HI)
        packets = encode(x48, bitrate)
        a, b = path_a(packets), path_b(packets)
        fa_a.append(vad_verdicts(a))
        fa_b.append(vad_verdicts(b))
        open_a += opens(a)
        open_b += opens(b)
    summary: dict[str, float] = {
        k: float(np.mean([r[k] for r in rows]))
        for k in ("snr_b_vs_a", "snr_b_vs_a_0_7k", "top_a_vs_src", "top_b_vs_src", "lsd_0_7k", "lsd_7_8k",
                  "lsd_a_vs_src", "lsd_b_vs_src", "snr_a_vs_src", "snr_b_vs_src", "vad_agree", "recall_a", "recall_b")
    }
    summary["snr_b_vs_a_min"] = float(min(r["snr_b_vs_a"] for r in rows))
    summary["speech_clips_opened_a"] = float(sum(r["opens_a"] for r in rows))
    summary["speech_clips_opened_b"] = float(sum(r["opens_b"] for r in rows))
    summary["speech_clips"] = float(len(rows))
    summary["nonspeech_false_accept_a"] = float(np.concatenate(fa_a).mean())
    summary["nonspeech_false_accept_b"] = float(np.concatenate(fa_b).mean())
    summary["nonspeech_clips_opened_a"] = float(open_a)
    summary["nonspeech_clips_opened_b"] = float(open_b)
    summary["nonspeech_clips"] = float(len(non_speech))
    summary["alias_out_dbfs_a"], summary["alias_out_dbfs_b"] = aliasing(bitrate)
    summary.update(timing(all_packets[:1500], passes))
    summary["rows"] = rows  # type: ignore[assignment]
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bitrates", type=int, nargs="+", default=[64_000, 32_000])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--per-clip", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for bitrate in args.bitrates:
        s = study(bitrate, args.passes)
        results[bitrate] = s
        print(f"\n== Opus {bitrate // 1000} kbit/s, {int(s['speech_clips'])} speech clips ==")
        print(f"SNR 16k-decode vs 48k path:            0-8 kHz mean {s['snr_b_vs_a']:.1f} dB (worst "
              f"{s['snr_b_vs_a_min']:.1f}); 0-7 kHz mean {s['snr_b_vs_a_0_7k']:.1f} dB")
        print(f"7.3-8 kHz level vs the source:         48k path {s['top_a_vs_src']:+.1f} dB (soxr HQ roll-off), "
              f"16k decode {s['top_b_vs_src']:+.1f} dB")
        print(f"LSD 16k-decode vs 48k path:            0-7 kHz {s['lsd_0_7k']:.2f} dB, 7-8 kHz {s['lsd_7_8k']:.2f} dB")
        print(f"vs the clean source, 0-7 kHz (SNR, LSD):          48k path LSD {s['lsd_a_vs_src']:.2f} dB / SNR "
              f"{s['snr_a_vs_src']:.1f} dB; 16k decode LSD {s['lsd_b_vs_src']:.2f} dB / SNR {s['snr_b_vs_src']:.1f} dB")
        print(f"8.5-16 kHz-only input at -20 dBFS comes out at: 48k path {s['alias_out_dbfs_a']:.1f} dBFS, "
              f"16k decode {s['alias_out_dbfs_b']:.1f} dBFS")
        print(f"VAD (gate + Silero) per-frame agreement {s['vad_agree']:.1%}; speech recall 48k {s['recall_a']:.1%} "
              f"vs 16k {s['recall_b']:.1%}; speech clips opened {int(s['speech_clips_opened_a'])} vs "
              f"{int(s['speech_clips_opened_b'])}")
        print(f"music+noise: frames accepted 48k {s['nonspeech_false_accept_a']:.2%} vs 16k "
              f"{s['nonspeech_false_accept_b']:.2%}; clips opened {int(s['nonspeech_clips_opened_a'])} vs "
              f"{int(s['nonspeech_clips_opened_b'])} of {int(s['nonspeech_clips'])}")
        print(f"µs per 20 ms frame: 48k decode + downmix + soxr {s['us_per_frame_48k_path']:.1f}, "
              f"16k mono decode {s['us_per_frame_16k_decode']:.1f}")
        if args.per_clip:
            for r in s["rows"]:  # type: ignore[attr-defined]
                print(f"  {r['clip']:32s} lag {r['lag']:+3d} SNR {r['snr_b_vs_a']:5.1f}/{r['snr_b_vs_a_0_7k']:5.1f} "
                      f"LSD {r['lsd_0_7k']:.2f}/"
                      f"{r['lsd_7_8k']:.2f} src LSD a {r['lsd_a_vs_src']:.2f} b {r['lsd_b_vs_src']:.2f} "
                      f"VAD agree {r['vad_agree']:.0%}")
    if args.json:
        print(json.dumps({k: {m: x for m, x in v.items() if m != "rows"} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
