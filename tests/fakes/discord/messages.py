"""Messages the bot creates, their uploaded files, and the CDN that serves attachments back.

A file the bot uploads becomes an attachment whose URL points at the fake's ``/attachments/``
path, so a test can fetch exactly the bytes a user would see, and a file a test hands to a slash
command is served the same way for ``discord.Attachment.read()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import payloads
from .model import FakeUser, Snowflakes

Json = dict[str, Any]

EPHEMERAL = 1 << 6
LOADING = 1 << 7  # "thinking" placeholder left by a deferred response


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One ``files[n]`` part of a multipart request."""

    field: str
    filename: str
    data: bytes
    content_type: str | None

    @property
    def index(self) -> int | None:
        # discord.py names parts "files[0]", "files[1]", ... matching payload_json attachments[].id.
        if self.field.startswith("files[") and self.field.endswith("]"):
            return int(self.field[6:-1])
        return None


@dataclass(frozen=True, slots=True)
class CdnObject:
    data: bytes
    content_type: str | None


class Cdn:
    """Byte store behind ``https://127.0.0.1:PORT/attachments/...``."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self.objects: dict[str, CdnObject] = {}
        self.downloads: list[str] = []  # paths fetched, in order
        # Bytes of each path handed to the client's socket before it finished or went away; a
        # client that stops reading early leaves this far below the object's size.
        self.sent: dict[str, int] = {}

    def put(self, channel_id: int, attachment_id: int, filename: str, data: bytes,
            content_type: str | None) -> str:
        path = f"/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        self.objects[path] = CdnObject(data=data, content_type=content_type)
        return self._base_url() + path

    def get(self, path: str) -> CdnObject | None:
        obj = self.objects.get(path)
        if obj is not None:
            self.downloads.append(path)
        return obj


class MessageStore:
    def __init__(self, *, snowflakes: Snowflakes, cdn: Cdn, author: Callable[[], FakeUser],
                 guild_of: Callable[[int], int | None]) -> None:
        self._snowflakes = snowflakes
        self._cdn = cdn
        self._author = author
        self._guild_of = guild_of
        self.by_id: dict[int, Json] = {}
        self.uploads: dict[int, list[UploadedFile]] = {}  # message id -> files sent with it

    def create(self, channel_id: int, body: Json, files: list[UploadedFile], *, extra_flags: int = 0,
               type: int = 0, webhook_id: int | None = None, application_id: int | None = None,
               interaction_metadata: Json | None = None) -> Json:
        message_id = self._snowflakes.next()
        message = payloads.message(
            id=message_id, channel_id=channel_id, guild_id=self._guild_of(channel_id), author=self._author(),
            content=body.get("content") or "", embeds=body.get("embeds") or [],
            attachments=self._attachments(channel_id, body, files, []),
            components=body.get("components") or [], flags=int(body.get("flags") or 0) | extra_flags,
            type=type, webhook_id=webhook_id, application_id=application_id,
            interaction_metadata=interaction_metadata,
        )
        self.by_id[message_id] = message
        self.uploads[message_id] = list(files)
        return message

    def edit(self, message: Json, body: Json, files: list[UploadedFile]) -> Json:
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] or ("" if key == "content" else [])
        if "flags" in body and body["flags"] is not None:
            # Ephemerality is fixed at creation; only the other flags are editable.
            message["flags"] = (int(body["flags"]) & ~EPHEMERAL) | (message["flags"] & EPHEMERAL)
        message["flags"] &= ~LOADING
        if "attachments" in body or files:
            message["attachments"] = self._attachments(int(message["channel_id"]), body, files,
                                                       message["attachments"])
            self.uploads.setdefault(int(message["id"]), []).extend(files)
        message["edited_timestamp"] = payloads.now_iso()
        return message

    def _attachments(self, channel_id: int, body: Json, files: list[UploadedFile],
                     existing: list[Json]) -> list[Json]:
        by_index = {f.index: f for f in files}
        kept = {a["id"]: a for a in existing}
        described = body.get("attachments")
        if described is None:
            described = [{"id": f.index} for f in files]
            described = [{"id": a["id"]} for a in existing] + described
        result: list[Json] = []
        for entry in described:
            ref = entry.get("id")
            if isinstance(ref, str) and ref in kept:
                result.append(kept[ref])
                continue
            upload = by_index.get(int(ref)) if ref is not None and str(ref).isdigit() else None
            if upload is None:
                continue
            attachment_id = self._snowflakes.next()
            filename = entry.get("filename") or upload.filename
            url = self._cdn.put(channel_id, attachment_id, filename, upload.data, upload.content_type)
            result.append(payloads.attachment(id=attachment_id, filename=filename, size=len(upload.data),
                                              url=url, content_type=upload.content_type,
                                              description=entry.get("description")))
        return result
