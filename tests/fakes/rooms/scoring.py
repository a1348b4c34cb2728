"""Judge a played room from the outside: what reached the fake Mistral and what the channel heard.

Nothing here asks the bot. A reply is a chat request; its sentences are the speech requests whose
text belongs to its answer; each audio frame the bot sent is credited to the reply whose speech
request came last before it. From that:

- **false cut-off**: an addressed cue that had a reply played to a fragment of it, or whose
  answer started playing before its last word was sent;
- **missed question**: an addressed cue whose whole text never had a reply played;
- **spurious reply**: a reply played to something nobody addressed to the bot (music, an aside,
  a backchannel);
- **false interruption**: an answer that stopped short although no cue that may interrupt it
  (``Cue.interrupts``) was said while it played;
- **wasted preemptive start**: a chat request whose reply never played, with its cost;
- **STT on non-speech**: seconds of music or noise found in the realtime sessions' audio, and the
  largest overhead of one session: seconds billed beyond its speech (first word to last word);
- **latency**: the question's last audio packet leaving the member → the answer's first packet
  reaching the fake voice server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.fakes.mistral.sse import tokens_of
from tests.fakes.rooms.runner import Trace, answer_for, user_text, words_of
from tests.fakes.rooms.scenarios import Cue
from tests.fakes.voice.rtp import OPUS_SILENCE

FRAME_S = 0.020
COMPLETE = 0.9  # an answer counts as played whole past this share of its expected audio
# Default price table (bot/config.py): mistral-small in/out per token, Voxtral TTS per character.
USD_PER_INPUT_TOKEN = 0.10 / 1e6
USD_PER_OUTPUT_TOKEN = 0.30 / 1e6
USD_PER_TTS_CHARACTER = 16 / 1e6


@dataclass(slots=True)
class Reply:
    said: str  # the person's words as the chat request carried them
    answer: str
    received_at: float
    input_tokens: int
    sentences: list[str] = field(default_factory=list)
    frames: list[float] = field(default_factory=list)  # arrival times of its audio frames
    verdict: str = "spurious"  # answer | fragment | spurious
    cue: str | None = None

    @property
    def played(self) -> bool:
        return bool(self.frames)


@dataclass(slots=True)
class RoomOutcome:
    room: str
    false_cut_offs: int = 0
    false_interruptions: int = 0
    spurious_replies: int = 0
    missed_questions: int = 0
    stt_nonspeech_s: float = 0.0
    stt_billed_s: float = 0.0
    stt_speech_s: float = 0.0
    # The largest (billed - speech) of one realtime session, speech counted from its first word
    # to its last (a thinking pause inside a turn is part of the turn).
    stt_overhead_max_s: float = 0.0
    chat_requests: int = 0
    preemptive_wasted: int = 0
    wasted_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)
    languages: dict[str, str] = field(default_factory=dict)  # cue -> "prompt=.. tts=.."
    notes: list[str] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)


def _contains(outer: list[str], inner: list[str]) -> bool:
    size = len(inner)
    return size > 0 and any(outer[i:i + size] == inner for i in range(len(outer) - size + 1))


def _classify(reply: Reply, cues: tuple[Cue, ...]) -> None:
    said = words_of(reply.said)
    for cue in cues:
        if cue.answer is None:
            continue
        expected = words_of(cue.text)
        if _contains(said, expected):
            reply.verdict, reply.cue = "answer", cue.name
            return
        if said and _contains(expected, said):
            reply.verdict, reply.cue = "fragment", cue.name
            return


def replies_of(trace: Trace) -> list[Reply]:
    replies = []
    for chat in trace.chats:
        said = user_text(chat.body)
        messages = chat.body.get("messages", [])
        tokens = sum(len(str(m.get("content", "")).split()) + 1 for m in messages)
        replies.append(Reply(said, answer_for(trace.room, said), chat.received_at, tokens))
    owners: list[tuple[float, Reply]] = []
    for request in sorted(trace.speech, key=lambda r: r.received_at):
        text = str(request.body.get("input", "")).strip()
        candidates = [r for r in replies if text and text in r.answer and r.received_at <= request.received_at]
        if candidates:
            owner = max(candidates, key=lambda r: r.received_at)
            owner.sentences.append(text)
            owners.append((request.received_at, owner))
    for frame in trace.frames:
        if frame.opus == OPUS_SILENCE:
            continue
        before = [owner for at, owner in owners if at <= frame.received_at]
        if before:
            before[-1].frames.append(frame.received_at)
    for reply in replies:
        _classify(reply, trace.room.cues)
    return replies


def score(trace: Trace) -> RoomOutcome:
    room = trace.room
    outcome = RoomOutcome(room.name, chat_requests=len(trace.chats))
    replies = outcome.replies = replies_of(trace)
    for name in trace.skipped:
        outcome.notes.append(f"cue {name} skipped: the reply it waits for never played")
    for cue in room.cues:
        if cue.answer is None or cue.name not in trace.sent:
            continue
        end = trace.cue_end(cue.name)
        assert end is not None
        answers = [r for r in replies if r.cue == cue.name and r.verdict == "answer" and r.played]
        fragments = [r for r in replies if r.cue == cue.name and r.verdict == "fragment" and r.played]
        early = [r for r in answers if r.frames[0] < end]
        if fragments or early:
            outcome.false_cut_offs += 1
            outcome.notes.append(f"{cue.name}: cut off ({len(fragments)} fragment(s) answered aloud: "
                                 f"{[r.said for r in fragments]}; {len(early)} answer(s) started early)")
        if not answers:
            outcome.missed_questions += 1
            outcome.notes.append(f"{cue.name}: never answered whole")
            continue
        answer = answers[0]
        outcome.latencies.append(answer.frames[0] - end)
        expected = len(cue.answer) * trace.tts_seconds_per_character
        played = len(answer.frames) * FRAME_S
        if played < COMPLETE * expected:
            stop = answer.frames[-1]
            allowed = [c.name for c in room.cues if c.interrupts and any(
                answer.frames[0] <= p.first <= stop + 0.5 for p in trace.sent.get(c.name, ()))]
            if not allowed:
                outcome.false_interruptions += 1
                outcome.notes.append(f"{cue.name}: answer stopped after {played:.1f} of {expected:.1f} s")
        if cue.language != "en":
            outcome.languages[cue.name] = _language_report(trace, answer, cue.language)
    for reply in replies:
        if reply.verdict == "spurious" and reply.played:
            outcome.spurious_replies += 1
            outcome.notes.append(f"spurious reply to {reply.said!r}")
        if not reply.played:
            outcome.preemptive_wasted += 1
            characters = sum(len(s) for s in reply.sentences)
            outcome.wasted_usd += (reply.input_tokens * USD_PER_INPUT_TOKEN
                                   + len(tokens_of(reply.answer)) * USD_PER_OUTPUT_TOKEN
                                   + characters * USD_PER_TTS_CHARACTER)
    _stt(trace, outcome)
    return outcome


def _language_report(trace: Trace, answer: Reply, language: str) -> str:
    chat = next((c for c in trace.chats if c.received_at == answer.received_at), None)
    system = str(chat.body["messages"][0].get("content", "")) if chat else ""
    in_prompt = language in system or {"fr": "French", "de": "German"}.get(language, "?") in system
    # Voxtral's speech request has no language field: the language shows in the voice chosen
    # for it (a preset voice per language when the guild has no clip).
    voices = [r.body.get("voice_id") for r in trace.speech if str(r.body.get("input", "")) in answer.sentences]
    return f"prompt={'yes' if in_prompt else 'no'} voice={voices[0] if voices else None}"


def _stt(trace: Trace, outcome: RoomOutcome) -> None:
    for session in trace.sessions:
        heard = trace.oracle.hear(bytes(session.audio))
        billed = len(session.audio) / 32_000
        speech = sum(s for kind, s in heard.seconds.items() if kind not in ("music", "noise"))
        nonspeech = sum(s for kind, s in heard.seconds.items() if kind in ("music", "noise"))
        outcome.stt_billed_s += billed
        outcome.stt_speech_s += speech
        outcome.stt_nonspeech_s += nonspeech
        outcome.stt_overhead_max_s = max(outcome.stt_overhead_max_s, billed - heard.speech_span)
