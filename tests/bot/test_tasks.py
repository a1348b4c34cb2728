"""bot.tasks.Worker: one background task, started once, stopped by cancelling and awaiting it."""

from __future__ import annotations

import asyncio

from bot.tasks import Worker


async def test_start_twice_runs_one_task_and_stop_cancels_it() -> None:
    runs: list[str] = []
    cancelled = asyncio.Event()

    async def run() -> None:
        runs.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    worker = Worker(run, name="test-worker")
    worker.start()
    worker.start()
    await asyncio.sleep(0)
    assert runs == ["started"]
    assert worker.running
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert "test-worker" in names

    await worker.stop()
    assert cancelled.is_set()  # stop returns only once the task has unwound
    assert not worker.running


async def test_stop_without_start_and_twice_is_harmless() -> None:
    async def run() -> None:
        await asyncio.sleep(3600)

    worker = Worker(run, name="idle")
    await worker.stop()
    worker.start()
    await worker.stop()
    await worker.stop()
    assert not worker.running


async def test_a_worker_can_start_again_after_stop() -> None:
    starts = 0

    async def run() -> None:
        nonlocal starts
        starts += 1
        await asyncio.sleep(3600)

    worker = Worker(run, name="again")
    worker.start()
    await asyncio.sleep(0)
    await worker.stop()
    worker.start()
    await asyncio.sleep(0)
    await worker.stop()
    assert starts == 2
