"""Regenerate the committed speech clips of the VAD corpus (``tests/fakes/vad_corpus/*.wav``).

    apt-get install -y espeak-ng sox alsa-utils
    python -m tests.fakes.vad_corpus.generate

Writes 16 kHz mono int16 WAVs: espeak-ng sentences in several languages and voices (formant
synthesis, so a stand-in for real voices: a VAD that misses them would miss accented or robotic
speech too) and the real human recordings Debian's ``alsa-utils`` ships (Front_Center.wav etc.,
one man saying a channel name; ``Noise.wav`` is its real noise sample). Music and synthetic noise
are not stored: ``tests/fakes/vad_corpus/__init__.py`` synthesises them at test time, seeded.
Only run by hand; tests read the committed files, so CI needs none of these tools.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALSA = Path("/usr/share/sounds/alsa")

# (file stem, espeak-ng voice, text): a question, then a second sentence, like a real request.
ESPEAK = [
    ("espeak_en_us_m", "en-us+m3", "What is the capital of France? Please tell me quickly."),
    ("espeak_en_gb_f", "en-gb+f3", "Could you play the next song, and turn it down a little?"),
    ("espeak_fr", "fr+m1", "Quelle est la capitale de la France ? Dis-le-moi vite."),
    ("espeak_de_f", "de+f2", "Wie wird das Wetter morgen in Berlin? Ich will wandern."),
    ("espeak_es", "es+m2", "¿Cuál es la montaña más alta del mundo? Explícamelo."),
    ("espeak_ru", "ru", "Привет, как дела? Расскажи мне что-нибудь интересное."),
    ("espeak_cmn", "cmn", "你好，今天天气怎么样？请告诉我。"),
    ("espeak_hi_f", "hi+f4", "नमस्ते, आज का मौसम कैसा है? जल्दी बताइए।"),
]
ALSA_CLIPS = ["Front_Center", "Front_Left", "Rear_Right", "Side_Left", "Noise"]


def _to_16k(src: Path, dst: Path) -> None:
    # -G guards against clipping in the rate conversion; dither off keeps silence silent.
    subprocess.run(  # noqa: S603 - fixed argument list, no shell
        ["sox", "-G", str(src), "-D", "-r", "16000", "-c", "1", "-b", "16", str(dst)], check=True
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for stem, voice, text in ESPEAK:
            raw = Path(tmp) / f"{stem}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(raw), text], check=True)  # noqa: S603,S607
            _to_16k(raw, HERE / f"{stem}.wav")
    for name in ALSA_CLIPS:
        _to_16k(ALSA / f"{name}.wav", HERE / f"alsa_{name.lower()}.wav")
    print(f"wrote {len(ESPEAK) + len(ALSA_CLIPS)} clips to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
