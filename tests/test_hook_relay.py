"""HookRelay's precomputed delivery: callers only for hooks someone implements, sync calls without await."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.events import TrialStarted
from hpt_async.plugins import TRACE_ENV, HookRelay

pytestmark = pytest.mark.anyio

EVENT = TrialStarted(7, 123.0)
STUDY = object()


class Log:
    def __init__(self) -> None:
        self.calls: list[str] = []


def test_a_hook_nobody_implements_has_no_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)

    class Ends:
        @hpt.hookimpl
        def hpt_trial_ended(self, event: Any) -> None:
            pass

    relay = HookRelay([Ends()])
    assert relay.trial_started is None and relay.caller("hpt_trial_started") is None
    assert not relay.listens("hpt_trial_started")
    assert relay.trial_ended is not None and relay.listens("hpt_trial_ended")


def test_tracing_gives_every_hook_a_caller_that_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    relay = HookRelay([])
    assert relay.trial_started is not None
    with caplog.at_level(logging.DEBUG, logger="hpt_async"):
        assert relay.trial_started(EVENT, STUDY) is None
    assert "hook hpt_trial_started(event=TrialStarted(number=7, time=123.0))" in caplog.text


def test_plain_implementations_are_called_directly_with_their_subset_of_arguments() -> None:
    log = Log()

    class Subsets:
        @hpt.hookimpl
        def hpt_trial_started(self, study: Any, event: Any) -> None:
            log.calls.append(f"reversed {event.number} {study is STUDY}")

    class EventOnly:
        @hpt.hookimpl
        def hpt_trial_started(self, event: Any) -> None:
            log.calls.append(f"event {event.number}")

    class StudyOnly:
        @hpt.hookimpl
        def hpt_trial_started(self, study: Any) -> None:
            log.calls.append(f"study {study is STUDY}")

    class Nothing:
        @hpt.hookimpl
        def hpt_trial_started(self) -> None:
            log.calls.append("nothing")

    relay = HookRelay([Subsets(), EventOnly(), StudyOnly(), Nothing()])
    assert relay.trial_started is not None
    assert relay.trial_started(EVENT, STUDY) is None  # all plain: nothing to await
    assert log.calls == ["reversed 7 True", "event 7", "study True", "nothing"]


async def test_an_awaitable_result_hands_the_rest_of_the_delivery_to_the_caller() -> None:
    log = Log()

    class First:
        @hpt.hookimpl
        def hpt_trial_started(self) -> None:
            log.calls.append("first")

    class Async:
        @hpt.hookimpl
        async def hpt_trial_started(self) -> None:
            await anyio.sleep(0)
            log.calls.append("async")

    async def later() -> None:
        log.calls.append("returned awaitable")

    class ReturnsAwaitable:
        @hpt.hookimpl
        def hpt_trial_started(self) -> Any:
            return later()

    class Last:
        @hpt.hookimpl
        def hpt_trial_started(self) -> None:
            log.calls.append("last")

    relay = HookRelay([First(), Async(), ReturnsAwaitable(), Last()])
    assert relay.trial_started is not None
    pending = relay.trial_started(EVENT, STUDY)
    assert log.calls == ["first"]  # the rest waits for the await, in order
    assert pending is not None
    await pending
    assert log.calls == ["first", "async", "returned awaitable", "last"]


@pytest.mark.parametrize("names", [("before", "slow", "after"), ("slow", "after"), ("before", "slow")])
async def test_a_delivery_interrupted_by_cancellation_resumes_after_the_interrupted_implementation(
    names: tuple[str, ...],
) -> None:
    log = Log()
    entered = anyio.Event()

    class Plain:
        def __init__(self, name: str) -> None:
            self.name = name

        @hpt.hookimpl
        def hpt_trial_ended(self) -> None:
            log.calls.append(self.name)

    class Slow:
        name = "slow"

        @hpt.hookimpl
        async def hpt_trial_ended(self) -> None:
            log.calls.append("slow")
            entered.set()
            await anyio.sleep_forever()

    relay = HookRelay([Slow() if name == "slow" else Plain(name) for name in names])
    fire = relay.trial_ended
    assert fire is not None
    progress = [0, 0]
    async with anyio.create_task_group() as tg:

        async def deliver() -> None:
            pending = fire(EVENT, STUDY, progress)
            assert pending is not None
            await pending

        tg.start_soon(deliver)
        with anyio.fail_after(10):
            await entered.wait()
        tg.cancel_scope.cancel()
    slow = names.index("slow")
    assert log.calls == list(names[: slow + 1]) and progress[1] == slow + 1
    assert fire(EVENT, STUDY, progress) is None  # finishing: only what was not called yet
    assert log.calls == list(names)
    assert fire(EVENT, STUDY, progress) is None  # nothing left
    assert log.calls == list(names)


async def test_raising_implementations_are_counted_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    log = Log()

    class Broken:
        name = "broken"

        @hpt.hookimpl
        def hpt_trial_started(self) -> None:
            raise RuntimeError("sync bug")

    class BrokenAsync:
        name = "broken-async"

        @hpt.hookimpl
        async def hpt_trial_started(self) -> None:
            raise ValueError("async bug")

    class Fine:
        @hpt.hookimpl
        def hpt_trial_started(self) -> None:
            log.calls.append("fine")

    for plugins in ([Broken()], [Broken(), BrokenAsync(), Fine()]):
        relay = HookRelay(plugins)
        for _ in range(3):
            pending = relay.trial_started(EVENT, STUDY)  # type: ignore[misc]
            if pending is not None:
                await pending
        expected = {"broken.hpt_trial_started": 3}
        if len(plugins) > 1:
            expected["broken-async.hpt_trial_started"] = 3
        assert relay.errors == expected
        relay.reset()
        assert relay.errors == {}
    assert log.calls == ["fine"] * 3
    assert caplog.text.count("RuntimeError: sync bug") == 2  # the traceback is logged once per relay


async def test_a_pair_of_implementations_keeps_order_around_an_await() -> None:
    log = Log()

    class Async:
        @hpt.hookimpl
        async def hpt_trial_started(self, event: Any) -> None:
            await anyio.sleep(0)
            log.calls.append(f"async {event.number}")

    class Plain:
        @hpt.hookimpl
        def hpt_trial_started(self, study: Any) -> None:
            log.calls.append(f"plain {study is STUDY}")

    for plugins, expected in (
        ([Async(), Plain()], ["async 7", "plain True"]),
        ([Plain(), Async()], ["plain True", "async 7"]),
    ):
        log.calls.clear()
        relay = HookRelay(plugins)
        assert relay.trial_started is not None
        pending = relay.trial_started(EVENT, STUDY)
        assert pending is not None
        await pending
        assert log.calls == expected
