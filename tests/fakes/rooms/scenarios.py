"""Scripted voice rooms (issue 12): who is in the channel, what each says or plays, and when.

A room is data only. ``tests.fakes.rooms.runner`` plays it through the fake Discord (each member
a ``SimulatedSpeaker``: real Opus, DAVE, RTP) against a bot joined with ``/join``, with the fake
Mistral transcribing through ``TranscriptOracle`` (it knows which scripted words each piece of
received audio carries), and ``tests.fakes.rooms.scoring`` judges what the bot did. The e2e tests
(tests/e2e/test_rooms.py) and ``python -m bench.room`` run these same definitions.

Timing follows Discord: a member who stops talking stops sending packets (after five Opus-silence
frames), so every ``Pause`` is a gap in the packet stream, not audio of silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["question", "aside", "backchannel", "music", "noise"]


@dataclass(frozen=True, slots=True)
class Person:
    key: str  # how cues name them
    name: str  # display name in the guild
    voice: str = "en-us"  # espeak-ng voice of their recorded clips
    bot: bool = False  # a Discord bot user (a music bot)


@dataclass(frozen=True, slots=True)
class Words:
    """Words said in one breath; their recorded clip sets the duration."""

    text: str
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Pause:
    """The member stops transmitting for this long, then goes on with the same cue."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Music:
    """Synthesised music (chords, a melody, drums) sent as the member's audio."""

    seconds: float
    heard_as: str = "oh baby baby la la la"  # what a speech model makes of it if it ever gets it


@dataclass(frozen=True, slots=True)
class DuringReply:
    """Start once the bot's reply to cue ``to`` has been playing for ``after`` seconds."""

    to: str
    after: float


@dataclass(frozen=True, slots=True)
class Cue:
    name: str
    who: str
    at: float | DuringReply  # seconds after the room starts, or relative to a reply
    parts: tuple[Words | Pause | Music, ...]
    kind: Kind
    answer: str | None = None  # set: addressed to the bot, which must answer the whole cue
    # A cue heard while the bot speaks that must stop it (a real turn by someone who may).
    interrupts: bool = False

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts if isinstance(p, Words))

    @property
    def addressed(self) -> bool:
        return self.answer is not None

    @property
    def language(self) -> str:
        return next((p.language for p in self.parts if isinstance(p, Words)), "en")


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    description: str
    people: tuple[Person, ...]  # the first one runs /join
    cues: tuple[Cue, ...]
    settings: dict[str, str] = field(default_factory=dict)  # "/settings <key>" values to apply

    def person(self, key: str) -> Person:
        return next(p for p in self.people if p.key == key)

    def cue(self, name: str) -> Cue:
        return next(c for c in self.cues if c.name == name)

    @property
    def humans(self) -> int:
        return sum(1 for p in self.people if not p.bot)


BOB = Person("bob", "bob", voice="en-us")
ALICE = Person("alice", "alice", voice="en-gb+f3")
CAROL = Person("carol", "carol", voice="en-gb-scotland+f2")
DJ = Person("dj", "Groovy", bot=True)

CAPITAL = "What is the capital of France?"
PARIS = "Paris is the capital of France."
LYON = ("Lyon was founded by the Romans as Lugdunum. It became the capital of the Gauls. "
        "Its silk weavers made it rich. Today it is known for its food.")

ROOMS: tuple[Room, ...] = (
    Room(
        "two_sentences", "One member asks a question in two sentences with a normal pause between them.",
        (BOB,),
        (Cue("q", "bob", 0.5, (Words(CAPITAL), Pause(0.6), Words("Please tell me quickly.")), "question",
             answer=PARIS),),
    ),
    Room(
        "thinking_pause", "A 0.8 s pause in the middle of a sentence, while the member looks for a word.",
        (BOB,),
        (Cue("q", "bob", 0.5, (Words("What is the capital of"), Pause(0.8), Words("France?")), "question",
             answer=PARIS),),
    ),
    Room(
        "backchannel", "The member says 'mm-hm' while the bot gives a long answer; it must carry on.",
        (BOB,),
        (Cue("q", "bob", 0.5, (Words("Tell me about the history of Lyon."),), "question", answer=LYON),
         Cue("mmhm", "bob", DuringReply("q", 2.0), (Words("Mm-hm."),), "backchannel")),
    ),
    Room(
        "side_remark", "Two other members talk to each other while the bot answers a third.",
        (BOB, ALICE, CAROL),
        (Cue("q", "bob", 0.5, (Words("Voxcord, tell me about the history of Lyon."),), "question", answer=LYON),
         Cue("aside", "alice", DuringReply("q", 1.5), (Words("Did you feed the cat this morning?"),), "aside"),
         Cue("aside2", "carol", DuringReply("q", 4.5), (Words("Yes, before breakfast."),), "aside")),
    ),
    Room(
        "music_bot", "A music bot streams for 15 s while the only human asks a question.",
        (BOB, DJ),
        (Cue("music", "dj", 0.0, (Music(15.0),), "music"),
         Cue("q", "bob", 3.0, (Words(CAPITAL),), "question", answer=PARIS)),
    ),
    Room(
        "music_on_mic", "Music plays into a member's own microphone, then they ask a question.",
        (BOB,),
        (Cue("music", "bob", 0.0, (Music(8.0),), "music"),
         Cue("q", "bob", 10.0, (Words(CAPITAL),), "question", answer=PARIS)),
    ),
    Room(
        "french", "A question in French: the answer must come in French.",
        (BOB,),
        (Cue("q", "bob", 0.5, (Words("Quelle est la capitale de la France ?", language="fr"),), "question",
             answer="Paris est la capitale de la France."),),
    ),
)


def room(name: str) -> Room:
    return next(r for r in ROOMS if r.name == name)


def all_words() -> list[tuple[Person, Words]]:
    """Every (speaker, words) pair the rooms use: the recorded clips needed."""
    seen: dict[tuple[str, str], tuple[Person, Words]] = {}
    for r in ROOMS:
        for cue in r.cues:
            person = r.person(cue.who)
            for part in cue.parts:
                if isinstance(part, Words):
                    seen.setdefault((person.voice, part.text), (person, part))
    return list(seen.values())
