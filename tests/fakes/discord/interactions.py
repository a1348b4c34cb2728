"""Recording the bot's answers to interactions: callbacks, followups, edits, files, timings.

Discord's rules that the fake enforces, because bots get them wrong in production:
- an interaction is acknowledged once; a second callback is 400 code 40060;
- the first callback must come within 3 s (``ack_deadline``), otherwise 404 code 10062
  "Unknown interaction";
- "@original" is the response message, or for a component click the message clicked.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .messages import EPHEMERAL, LOADING, UploadedFile

if TYPE_CHECKING:
    from .server import FakeDiscord

Json = dict[str, Any]

# Interaction callback types (Discord docs, "Interaction Response Object").
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
INTERACTION_RESPONSE_MESSAGE_TYPE = {2: 20, 3: 19, 5: 19}  # chat input -> 20, components/modals -> 19


@dataclass(frozen=True, slots=True)
class Answer:
    """One request the bot made with this interaction's token."""

    kind: str  # "callback" | "followup" | "edit" | "delete"
    at: float  # clock() when the fake received it
    payload: Json
    files: tuple[UploadedFile, ...] = ()
    callback_type: int | None = None
    message_id: int | None = None
    message: Json | None = None  # snapshot of the message right after this request


@dataclass(frozen=True, slots=True)
class Reply:
    """The first message a user would see as the answer."""

    content: str
    embeds: list[Json]
    flags: int
    components: list[Json]
    attachments: list[Json]
    files: tuple[UploadedFile, ...]
    message_id: int
    answer: Answer

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)


@dataclass(slots=True)
class InteractionRecord:
    id: int
    token: str
    payload: Json  # the INTERACTION_CREATE data sent to the bot
    dispatched_at: float
    original_message_id: int | None = None
    answers: list[Answer] = field(default_factory=list)
    messages: dict[int, Json] = field(default_factory=dict)  # live message objects this token touched
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # ---------- views ----------
    @property
    def callbacks(self) -> list[Answer]:
        return [a for a in self.answers if a.kind == "callback"]

    @property
    def followups(self) -> list[Answer]:
        return [a for a in self.answers if a.kind == "followup"]

    @property
    def edits(self) -> list[Answer]:
        return [a for a in self.answers if a.kind == "edit"]

    @property
    def files(self) -> list[UploadedFile]:
        return [f for a in self.answers for f in a.files]

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def deferred(self) -> bool:
        first = self.callbacks[:1]
        return bool(first) and first[0].callback_type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE)

    @property
    def ephemeral(self) -> bool:
        """Whether the response is ephemeral: decided by the first callback's flags, as on Discord."""
        first = self.callbacks[:1]
        if first and first[0].callback_type in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            return bool(int(first[0].payload.get("data", {}).get("flags") or 0) & EPHEMERAL)
        reply = self.reply()
        return reply is not None and reply.ephemeral

    @property
    def first_ack_after(self) -> float | None:
        first = self.callbacks[:1]
        return first[0].at - self.dispatched_at if first else None

    @property
    def modal(self) -> Json | None:
        for answer in self.callbacks:
            if answer.callback_type == MODAL:
                return answer.payload.get("data")
        return None

    @property
    def original(self) -> Json | None:
        return None if self.original_message_id is None else self.messages.get(self.original_message_id)

    def reply(self) -> Reply | None:
        """The first visible message: a type 4/7 callback, or the first edit/followup after a deferral."""
        for answer in self.answers:
            if answer.kind == "callback" and answer.callback_type not in (CHANNEL_MESSAGE, UPDATE_MESSAGE):
                continue
            message = answer.message
            if answer.kind == "delete" or answer.message_id is None or message is None:
                continue
            if message["flags"] & LOADING:
                continue
            return Reply(
                content=message["content"], embeds=list(message["embeds"]), flags=message["flags"],
                components=list(message["components"]), attachments=list(message["attachments"]),
                files=answer.files, message_id=answer.message_id, answer=answer,
            )
        return None

    # ---------- waiting ----------
    async def wait_for(
        self, predicate: Callable[[InteractionRecord], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline argument reads better in tests than a wrapping asyncio.timeout
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_answer(self, timeout: float = 10.0) -> Answer:  # noqa: ASYNC109 - as wait_for
        await self.wait_for(lambda r: bool(r.answers), timeout)
        return self.answers[0]

    async def wait_reply(self, timeout: float = 10.0) -> Reply:  # noqa: ASYNC109 - as wait_for
        await self.wait_for(lambda r: r.reply() is not None, timeout)
        reply = self.reply()
        assert reply is not None
        return reply

    def _record(self, answer: Answer) -> None:
        if answer.message_id is not None and answer.message is None:
            snapshot = copy.deepcopy(self.messages.get(answer.message_id))
            answer = dataclasses.replace(answer, message=snapshot)
        self.answers.append(answer)
        self._changed.set()


class ApiError(Exception):
    """A Discord-shaped error response: HTTP status plus JSON error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class InteractionLedger:
    """All interactions the fake sent, keyed by token, answering the webhook/callback routes."""

    def __init__(self, fake: FakeDiscord, *, clock: Callable[[], float] = time.monotonic,
                 ack_deadline: float | None = 3.0) -> None:
        self._fake = fake
        self.clock = clock
        self.ack_deadline = ack_deadline
        self.records: dict[str, InteractionRecord] = {}

    def open(self, *, id: int, token: str, payload: Json,
             original_message_id: int | None) -> InteractionRecord:
        record = InteractionRecord(id=id, token=token, payload=payload, dispatched_at=self.clock(),
                                   original_message_id=original_message_id)
        if original_message_id is not None and original_message_id in self._fake.messages.by_id:
            record.messages[original_message_id] = self._fake.messages.by_id[original_message_id]
        self.records[token] = record
        return record

    def _get(self, token: str) -> InteractionRecord:
        record = self.records.get(token)
        if record is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return record

    def callback(self, interaction_id: int, token: str, body: Json, files: list[UploadedFile]) -> Json:
        record = self.records.get(token)
        if record is None or record.id != interaction_id:
            raise ApiError(404, 10062, "Unknown interaction")
        now = self.clock()
        if self.ack_deadline is not None and now - record.dispatched_at > self.ack_deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        if record.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        kind = int(body["type"])
        data = body.get("data") or {}
        message: Json | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            message = self._fake.messages.create(
                self._channel_id(record), data, files, type=INTERACTION_RESPONSE_MESSAGE_TYPE.get(
                    record.payload["type"], 0),
                extra_flags=LOADING if kind == DEFERRED_CHANNEL_MESSAGE else 0,
                webhook_id=self._fake.application_id, application_id=self._fake.application_id,
                interaction_metadata=self._metadata(record),
            )
            record.original_message_id = int(message["id"])
            record.messages[int(message["id"])] = message
        elif kind == UPDATE_MESSAGE and record.original is not None:
            message = self._fake.messages.edit(record.original, data, files)
        record._record(Answer(kind="callback", at=now, payload=body, files=tuple(files), callback_type=kind,
                              message_id=None if message is None else int(message["id"])))
        response: Json = {"interaction": {
            "id": str(record.id), "type": record.payload["type"],
            "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
            "response_message_ephemeral": bool(message is not None and message["flags"] & EPHEMERAL),
        }}
        if message is not None:
            response["interaction"]["response_message_id"] = message["id"]
            response["resource"] = {"type": kind, "message": message}
        elif kind != MODAL:
            response["resource"] = {"type": kind}
        return response

    def followup(self, token: str, body: Json, files: list[UploadedFile]) -> Json:
        record = self._get(token)
        if not record.acknowledged:
            raise ApiError(404, 10015, "Unknown Webhook")  # Discord: followups need an ack first
        message = self._fake.messages.create(
            self._channel_id(record), body, files, type=INTERACTION_RESPONSE_MESSAGE_TYPE.get(
                record.payload["type"], 0),
            webhook_id=self._fake.application_id, application_id=self._fake.application_id,
            interaction_metadata=self._metadata(record),
        )
        record.messages[int(message["id"])] = message
        record._record(Answer(kind="followup", at=self.clock(), payload=body, files=tuple(files),
                              message_id=int(message["id"])))
        return message

    def get(self, token: str, message_ref: str) -> Json:
        record = self._get(token)
        return self._message(record, message_ref)

    def edit(self, token: str, message_ref: str, body: Json, files: list[UploadedFile]) -> Json:
        record = self._get(token)
        message = self._fake.messages.edit(self._message(record, message_ref), body, files)
        record._record(Answer(kind="edit", at=self.clock(), payload=body, files=tuple(files),
                              message_id=int(message["id"])))
        return message

    def delete(self, token: str, message_ref: str) -> None:
        record = self._get(token)
        message = self._message(record, message_ref)
        self._fake.messages.by_id.pop(int(message["id"]), None)
        record._record(Answer(kind="delete", at=self.clock(), payload={}, message_id=None))

    def _message(self, record: InteractionRecord, message_ref: str) -> Json:
        message_id = record.original_message_id if message_ref == "@original" else int(message_ref)
        message = None if message_id is None else record.messages.get(message_id)
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _channel_id(self, record: InteractionRecord) -> int:
        return int(record.payload["channel_id"])

    def _metadata(self, record: InteractionRecord) -> Json:
        user = record.payload.get("member", {}).get("user") or record.payload.get("user")
        return {"id": str(record.id), "type": record.payload["type"], "user": user,
                "authorizing_integration_owners": record.payload.get("authorizing_integration_owners", {})}
