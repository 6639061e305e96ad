"""The web process's request slots (apps/core/request_threads.py): a burst takes turns, reads
first without starving writes, and a request that waits on something slow holds no one up."""

from __future__ import annotations

import asyncio

from apps.core.request_threads import READS_IN_A_ROW, SLOT_HOLD_SECONDS, RequestSlots


async def _occupied(slots: RequestSlots, read: bool = False) -> tuple[asyncio.Task, asyncio.Event]:
    """A request holding a slot until the event is set."""
    gate = asyncio.Event()
    holder = asyncio.create_task(slots.run(read, gate.wait))
    await asyncio.sleep(0)
    return holder, gate


def _work(log: list[str], name: str, seconds: float = 0.0):
    async def call():
        log.append(name)
        await asyncio.sleep(seconds)
        return name
    return call


def test_reads_go_before_the_writes_waiting_ahead_of_them():
    async def scenario() -> list[str]:
        slots, log = RequestSlots(1), ["first"]
        first, gate = await _occupied(slots)
        writes = [asyncio.create_task(slots.run(False, _work(log, f"write{i}"))) for i in range(3)]
        await asyncio.sleep(0)
        read = asyncio.create_task(slots.run(True, _work(log, "read")))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, read, *writes)
        assert slots.busy == 0
        return log

    assert asyncio.run(scenario()) == ["first", "read", "write0", "write1", "write2"]


def test_a_stream_of_reads_lets_a_write_through():
    async def scenario() -> list[str]:
        slots, log = RequestSlots(1), []
        first, gate = await _occupied(slots, read=True)
        write = asyncio.create_task(slots.run(False, _work(log, "write")))
        reads = [asyncio.create_task(slots.run(True, _work(log, f"read{i}"))) for i in range(8)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, write, *reads)
        return log

    log = asyncio.run(scenario())
    assert log.index("write") == READS_IN_A_ROW


def test_a_slow_request_gives_its_slot_up():
    async def scenario() -> tuple[float, int]:
        slots, log = RequestSlots(1), []
        slow = asyncio.create_task(slots.run(False, _work(log, "slow", seconds=1.0)))
        await asyncio.sleep(0)
        started = asyncio.get_running_loop().time()
        await slots.run(True, _work(log, "quick"))
        waited = asyncio.get_running_loop().time() - started
        await slow
        return waited, slots.busy

    waited, busy = asyncio.run(scenario())
    assert SLOT_HOLD_SECONDS * 0.8 <= waited < 0.5
    assert busy == 0


def test_a_request_that_goes_away_while_waiting_leaves_the_count_right():
    async def scenario() -> int:
        slots, log = RequestSlots(1), []
        first, gate = await _occupied(slots)
        gone = asyncio.create_task(slots.run(False, _work(log, "gone")))
        kept = asyncio.create_task(slots.run(False, _work(log, "kept")))
        await asyncio.sleep(0)
        gone.cancel()
        gate.set()
        await asyncio.gather(first, kept)
        assert log == ["kept"]
        return slots.busy

    assert asyncio.run(scenario()) == 0
