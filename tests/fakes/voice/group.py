"""One voice channel's DAVE group as the voice gateway orchestrates it.

The fake plays Discord's role: it never holds media keys itself. It forwards key packages as
signed Add/Remove proposals, picks the winning commit, announces it (opcode 29) to members and
sends welcomes (opcode 30) to joiners, then executes the transition once the bot says ready
(opcodes 23 -> 22). Simulated users are real ``davey.DaveSession`` members, so the bot's MLS
state is checked against a real peer at every step.

Changes are serialized with a lock, like Discord's one-transition-at-a-time rule, and run as
tasks because the bot's answer (its commit, its ready) arrives on the same websocket reader
that triggered them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import davey

from tests.fakes.voice.dave import (
    ExternalSender,
    proposals_payload,
    split_commit_welcome,
    transition_payload,
)

_log = logging.getLogger(__name__)

Committer = Literal["bot", "simulated"]
SendJson = Callable[[int, dict[str, Any]], Awaitable[None]]
SendBinary = Callable[[int, bytes], Awaitable[None]]

OP_PREPARE_TRANSITION = 21
OP_EXECUTE_TRANSITION = 22
OP_PREPARE_EPOCH = 24
OP_EXTERNAL_SENDER = 25
OP_PROPOSALS = 27
OP_ANNOUNCE_COMMIT = 29
OP_WELCOME = 30


@dataclass(slots=True)
class BotLink:
    """How the group reaches the bot's current voice websocket."""

    user_id: int
    send_json: SendJson
    send_binary: SendBinary
    key_package: bytes | None = None
    awaiting_key_package: bool = False
    in_group: bool = False
    commit: asyncio.Future[bytes] | None = None
    ready: dict[int, asyncio.Event] = field(default_factory=dict)


class DaveGroup:
    def __init__(self, channel_id: int, *, committer: Committer = "simulated", relay_delay: float = 0.0) -> None:
        """``relay_delay``: seconds between the simulated members processing a commit (and, being
        davey peers, encrypting with the new epoch's key at once) and the gateway relaying it to
        the bot: the websocket's one-way latency, in which the bot cannot open their frames."""
        self.channel_id = channel_id
        self.committer: Committer = committer
        self.relay_delay = relay_delay
        self.external_sender = ExternalSender()
        self.protocol_version = 1
        self.epoch = 0  # 0 = no established group yet: every member only has a pending one
        self.members: dict[int, davey.DaveSession] = {}
        self._in_group: set[int] = set()
        self.bot: BotLink | None = None
        self.transitions_executed: list[int] = []
        self._next_transition = 0
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- queries -----
    def is_settled(self) -> bool:
        """No change in flight, and if the bot is here with DAVE on, it shares the group."""
        if self._busy:
            return False
        if self.protocol_version == 0:
            return True
        if self.bot is None:
            return True
        if self.bot.awaiting_key_package:
            return False
        return self.bot.in_group or not self.members

    async def wait_settled(self) -> None:
        await self.notify()
        async with self._changed:
            await self._changed.wait_for(self.is_settled)

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def session(self, user_id: int) -> davey.DaveSession:
        return self.members[user_id]

    def member_ready(self, user_id: int) -> bool:
        return user_id in self._in_group and self.members[user_id].ready

    async def wait_member_ready(self, user_id: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.protocol_version == 0 or self.member_ready(user_id))

    def decrypt_from_bot(self, frame: bytes) -> bytes | None:
        """Decrypt the bot's E2EE frame as any simulated member would; None if nobody can."""
        if self.bot is None:
            return None
        for uid in sorted(self._in_group):
            with contextlib.suppress(ValueError):
                return bytes(self.members[uid].decrypt(self.bot.user_id, davey.MediaType.audio, frame))
        return None

    # ----- membership changes driven by the server -----
    def add_simulated(self, user_id: int) -> None:
        session = davey.DaveSession(1, user_id, self.channel_id)
        session.set_external_sender(self.external_sender.package)
        self.members[user_id] = session
        self.spawn(self._join(user_id))

    def remove_simulated(self, user_id: int) -> None:
        self.spawn(self._leave(user_id))

    def bot_connected(self, link: BotLink) -> None:
        self.bot = link

    def bot_disconnected(self) -> None:
        bot, self.bot = self.bot, None
        if bot is None:
            return
        if bot.commit is not None and not bot.commit.done():
            bot.commit.cancel()
        for event in bot.ready.values():
            event.set()

    async def close(self) -> None:
        self.bot_disconnected()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----- bot opcodes (called from the websocket reader; must not block) -----
    def on_key_package(self, key_package: bytes) -> None:
        if self.bot is None:
            return
        self.bot.key_package = key_package
        self.bot.awaiting_key_package = False
        self.bot.in_group = False
        self.spawn(self._form())

    def on_commit_welcome(self, payload: bytes) -> None:
        bot = self.bot
        if bot is not None and bot.commit is not None and not bot.commit.done():
            bot.commit.set_result(payload)
        # Otherwise another member's commit won this epoch; Discord drops the loser silently.

    def on_transition_ready(self, transition_id: int) -> None:
        if self.bot is not None and transition_id in self.bot.ready:
            self.bot.ready[transition_id].set()

    # ----- protocol version changes -----
    def downgrade(self) -> None:
        self.spawn(self._downgrade())

    def upgrade(self) -> None:
        self.spawn(self._upgrade())

    # ----- internals -----
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._busy += 1
        task = asyncio.create_task(self._run(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            async with self._lock:
                await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("DAVE group change failed in channel %s", self.channel_id)
        finally:
            self._busy -= 1
            async with self._changed:
                self._changed.notify_all()

    def _transition_id(self) -> int:
        self._next_transition = self._next_transition % 0xFFFF + 1  # 0 means "no transition"
        return self._next_transition

    async def _join(self, user_id: int) -> None:
        if user_id not in self.members or self.protocol_version == 0:
            return
        if self.epoch == 0:
            await self._form()
            return
        proposal = self.external_sender.add_proposal(
            self.channel_id, self.epoch, self.members[user_id].get_serialized_key_package()
        )
        await self._propose_and_commit([proposal], joiners={user_id})

    async def _leave(self, user_id: int) -> None:
        session = self.members.get(user_id)
        if session is None:
            return
        if user_id in self._in_group and self.epoch > 0 and self.protocol_version > 0:
            leaf = session.own_leaf_index
            self._in_group.discard(user_id)
            del self.members[user_id]
            proposal = self.external_sender.remove_proposal(self.channel_id, self.epoch, leaf)
            await self._propose_and_commit([proposal], joiners=set())
        else:
            self._in_group.discard(user_id)
            del self.members[user_id]

    async def _form(self) -> None:
        """Create a fresh group (epoch 0 -> 1) from every pending participant."""
        bot = self.bot
        if self.protocol_version == 0 or bot is None or bot.key_package is None or not self.members:
            return
        self.epoch = 0
        self._in_group.clear()
        for uid, session in self.members.items():
            session.reinit(1, uid, self.channel_id)
        sims = sorted(self.members)
        append = davey.ProposalsOperationType.append
        if self.committer == "bot":
            proposals = [self.external_sender.add_proposal(
                self.channel_id, 0, self.members[uid].get_serialized_key_package()) for uid in sims]
            await self._bot_commit(proposals, joiners=set(sims))
            return
        leader, others = sims[0], sims[1:]
        proposals = [self.external_sender.add_proposal(
            self.channel_id, 0, self.members[uid].get_serialized_key_package()) for uid in others]
        proposals.append(self.external_sender.add_proposal(self.channel_id, 0, bot.key_package))
        result = self.members[leader].process_proposals(append, proposals_payload(proposals)[1:])
        assert isinstance(result, davey.CommitWelcome)
        self._in_group.add(leader)
        await self._announce(result.commit, result.welcome, joiners={*others, bot.user_id})

    async def _propose_and_commit(self, proposals: list[bytes], joiners: set[int]) -> None:
        """Existing members all store the proposals (commits reference them); one commits."""
        body = proposals_payload(proposals)
        append = davey.ProposalsOperationType.append
        sim_commits = {uid: self.members[uid].process_proposals(append, body[1:])
                       for uid in sorted(self._in_group)}
        bot = self.bot
        if bot is not None and bot.in_group and (self.committer == "bot" or not sim_commits):
            await self._bot_commit(proposals, joiners)
            return
        if bot is not None and bot.in_group:
            await bot.send_binary(OP_PROPOSALS, body)  # the bot commits too and loses the race
        if not sim_commits:
            return
        winner = sim_commits[min(sim_commits)]
        assert isinstance(winner, davey.CommitWelcome)
        await self._announce(winner.commit, winner.welcome, joiners)

    async def _bot_commit(self, proposals: list[bytes], joiners: set[int]) -> None:
        bot = self.bot
        if bot is None:
            return
        bot.commit = asyncio.get_running_loop().create_future()
        await bot.send_binary(OP_PROPOSALS, proposals_payload(proposals))
        try:
            payload = await bot.commit
        except asyncio.CancelledError:
            if self.bot is bot:
                raise
            return  # the bot left mid-change; its next key package re-forms the group
        commit, welcome = split_commit_welcome(payload)
        await self._announce(commit, welcome, joiners)

    async def _announce(self, commit: bytes, welcome: bytes | None, joiners: set[int]) -> None:
        transition_id = self._transition_id()
        self.epoch += 1
        for uid in sorted(self._in_group - joiners):
            self.members[uid].process_commit(commit)
        for uid in sorted(joiners & self.members.keys()):
            assert welcome is not None
            self.members[uid].process_welcome(welcome)
            self._in_group.add(uid)
        bot = self.bot
        if bot is None:
            return
        if self.relay_delay:
            await asyncio.sleep(self.relay_delay)
            if self.bot is not bot:
                return
        if bot.user_id in joiners:
            assert welcome is not None
            await bot.send_binary(OP_WELCOME, transition_payload(transition_id, welcome))
        else:
            # Members, including a bot that committed a fresh group, learn the winner from 29.
            await bot.send_binary(OP_ANNOUNCE_COMMIT, transition_payload(transition_id, commit))
        bot.in_group = True
        await self._execute_when_ready(bot, transition_id)

    async def _execute_when_ready(self, bot: BotLink, transition_id: int) -> None:
        event = bot.ready.setdefault(transition_id, asyncio.Event())
        await event.wait()
        bot.ready.pop(transition_id, None)
        if self.bot is bot:
            await bot.send_json(OP_EXECUTE_TRANSITION, {"transition_id": transition_id})
            self.transitions_executed.append(transition_id)

    async def _downgrade(self) -> None:
        self.protocol_version = 0
        for session in self.members.values():
            session.set_passthrough_mode(True, 120)
        bot = self.bot
        if bot is None:
            return
        transition_id = self._transition_id()
        bot.ready[transition_id] = asyncio.Event()
        await bot.send_json(OP_PREPARE_TRANSITION, {"transition_id": transition_id, "protocol_version": 0})
        await self._execute_when_ready(bot, transition_id)
        bot.in_group = False

    async def _upgrade(self) -> None:
        self.protocol_version = 1
        self.epoch = 0
        self._in_group.clear()
        bot = self.bot
        if bot is None:
            return
        bot.key_package = None
        bot.awaiting_key_package = True
        # Epoch 1 tells clients to build a brand-new group (daveprotocol.com, opcode 24); the bot
        # answers with a fresh key package, which re-forms the group with a real transition.
        await bot.send_json(OP_PREPARE_EPOCH, {"protocol_version": 1, "epoch": 1,
                                               "transition_id": self._transition_id()})
