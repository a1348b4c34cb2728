"""Streaming chat completions: text deltas as Mistral produces them, usage when the stream ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mistralai.client.models import AssistantMessage, SystemMessage, UserMessage
from mistralai.client.types import UNSET

from .retry import NO_SDK_RETRIES, RetryPolicy
from .streams import stream_items

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.client.models import CompletionEvent
    from mistralai.client.utils.eventstreaming import EventStreamAsync

_OPERATION = "chat"
_SDK_MESSAGE: dict[str, type[SystemMessage] | type[UserMessage] | type[AssistantMessage]] = {
    "system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage,
}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatUsage:
    input_tokens: int
    output_tokens: int


class ChatStream(AsyncIterator[str]):
    """One reply being generated. Iterate for text deltas; ``usage`` is set once the stream ends.

    Failures before the first token are retried by the policy; after it they raise, because the
    words already spoken cannot be taken back. Call ``aclose()`` when abandoning it (barge-in).
    """

    def __init__(self, model: ChatModel, messages: list[ChatMessage], max_tokens: int,
                 on_open: Callable[[], None] | None = None) -> None:
        self._model = model
        self._on_open = on_open
        # SDK model instances, not dicts: for plain data the SDK re-walks every message against its
        # union of message types before sending (~2.5 ms for a 20-turn history, on the loop).
        self._messages = [_SDK_MESSAGE[message.role](content=message.content) for message in messages]
        self._max_tokens = max_tokens
        self._generator = self._run()
        self.usage: ChatUsage | None = None
        self.finish_reason: str | None = None

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> str:
        return await self._generator.__anext__()

    async def aclose(self) -> None:
        await self._generator.aclose()

    def _run(self) -> AsyncGenerator[str, None]:
        model = self._model
        return stream_items(_OPERATION, model.retry, self._open, self._absorb,
                            first_item_timeout=model.first_token_timeout, idle_timeout=model.idle_timeout)

    async def _open(self) -> EventStreamAsync[CompletionEvent]:
        """One attempt: a fresh request (usage and finish reason belong to the attempt that answers)."""
        model = self._model
        self.usage = None
        self.finish_reason = None
        events = await model.client.chat.stream_async(
            model=model.model,
            messages=self._messages,
            max_tokens=self._max_tokens,
            temperature=UNSET if model.temperature is None else model.temperature,
            retries=NO_SDK_RETRIES,
            timeout_ms=round(model.idle_timeout * 1000),
        )
        if self._on_open is not None:
            try:
                self._on_open()
            except BaseException:
                await events.close()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
                raise
        return events

    def _absorb(self, event: CompletionEvent) -> str:
        chunk = event.data
        if chunk.usage is not None:
            self.usage = ChatUsage(input_tokens=chunk.usage.prompt_tokens or 0,
                                   output_tokens=chunk.usage.completion_tokens or 0)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            self.finish_reason = str(choice.finish_reason)
        return _text_of(choice.delta.content)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(getattr(part, "text", "") or "" for part in content)
    return ""


class ChatModel:
    """Mistral chat over one injected SDK client."""

    def __init__(
        self,
        client: Mistral,
        *,
        model: str,
        retry: RetryPolicy,
        first_token_timeout: float = 15.0,
        idle_timeout: float = 10.0,
        temperature: float | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.retry = retry
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self.temperature = temperature

    def stream(
        self, messages: list[ChatMessage], *, max_tokens: int, on_open: Callable[[], None] | None = None
    ) -> ChatStream:
        """Text deltas of the reply to ``messages``; see ``ChatStream`` for usage and errors.
        ``on_open`` is called when a request was sent and its response began (each attempt), while
        the model is still thinking: work that need not delay the request waits for it."""
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        return ChatStream(self, messages, max_tokens, on_open)
