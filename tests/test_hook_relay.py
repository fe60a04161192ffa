"""HookRelay's precomputed delivery: callers only for hooks someone implements, sync calls without await."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pluggy
import pytest

import hpt_async as hpt
from hpt_async import hookspecs
from hpt_async.events import TrialStarted
from hpt_async.plugins import TRACE_ENV, HookRelay, implemented_hooks
from hpt_async.relay import LIFECYCLE_HOOKS

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


# -- the order pluggy means, and the marks that cannot work here ---------------------------------------


class Mark:
    """An object implementing hpt_trial_ended as marked (plain, tryfirst or trylast), sync or async."""

    def __init__(self, name: str, log: Log, *, async_: bool = False, **opts: bool) -> None:
        self.name = name

        def record() -> None:
            log.calls.append(name)

        if async_:

            async def hpt_trial_ended(event: Any) -> None:
                await anyio.sleep(0)
                record()

        else:

            def hpt_trial_ended(event: Any) -> None:
                record()

        # A marked function stored on the instance: pluggy reads its options like a method's.
        self.hpt_trial_ended = hpt.hookimpl(**opts)(hpt_trial_ended)


def pluggy_order(objects: list[object]) -> list[str]:
    """The order a bare pluggy manager calls the objects' hpt_trial_ended in, registered last to first."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for obj in reversed(objects):
        pm.register(obj)
    return [impl.plugin.name for impl in reversed(pm.hook.hpt_trial_ended.get_hookimpls())]


@pytest.mark.parametrize("async_at", [None, "b", "e", "c"])
async def test_tryfirst_plain_and_trylast_are_called_in_the_order_pluggy_calls_them(async_at: str | None) -> None:
    log = Log()
    marks = {
        "a": {"tryfirst": True},
        "b": {},
        "c": {"trylast": True},
        "d": {},
        "e": {"tryfirst": True},
        "f": {"trylast": True},
    }
    objects: list[object] = [Mark(name, log, async_=name == async_at, **opts) for name, opts in marks.items()]
    expected = pluggy_order(objects)
    # tryfirst ones, then plain ones, both in the order given; then the trylast ones, last given first
    assert expected == ["a", "e", "b", "d", "f", "c"]
    pluggy_calls = Log()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, opts in reversed(marks.items()):
        pm.register(Mark(name, pluggy_calls, **opts))
    pm.hook.hpt_trial_ended(event=EVENT, study=STUDY)
    assert pluggy_calls.calls == expected  # what pluggy itself calls

    relay = HookRelay(objects)
    assert relay.trial_ended is not None
    pending = relay.trial_ended(EVENT, STUDY)
    if async_at is None:
        assert pending is None
    else:
        assert pending is not None
        await pending
    assert log.calls == expected


def test_an_object_given_twice_is_called_once_at_its_first_place() -> None:
    log = Log()
    a, b = Mark("a", log), Mark("b", log)
    relay = HookRelay([a, None, b, a])
    assert relay.trial_ended(EVENT, STUDY) is None  # type: ignore[misc]
    assert log.calls == ["a", "b"]


def test_many_implementations_are_all_called_in_order() -> None:
    log = Log()
    names = [f"p{i}" for i in range(12)]
    relay = HookRelay([Mark(name, log) for name in names])
    progress = [0, 0]
    assert relay.trial_ended(EVENT, STUDY, progress) is None  # type: ignore[misc]
    assert log.calls == names and progress[1] == 12
    assert relay.trial_ended(EVENT, STUDY, progress) is None  # type: ignore[misc]
    assert log.calls == names


def test_specname_lets_a_method_of_any_name_implement_a_hook() -> None:
    log = Log()

    class Watch:
        name = "watch"

        @hpt.hookimpl(specname="hpt_trial_ended")
        def on_end(self, event: Any, study: Any) -> None:
            log.calls.append(f"end {event.number} {study is STUDY}")

        @hpt.hookimpl(specname="hpt_trial_ended", trylast=True)
        def audit(self) -> None:
            raise RuntimeError("audit failed")

    assert implemented_hooks(Watch()) == ["hpt_trial_ended"]
    relay = HookRelay([Watch()])
    assert relay.trial_started is None and relay.trial_ended is not None
    assert relay.trial_ended(EVENT, STUDY) is None
    assert log.calls == ["end 7 True"]
    assert relay.errors == {"watch.hpt_trial_ended": 1}  # counted under the hook's name


@pytest.mark.parametrize("option", ["wrapper", "hookwrapper"])
@pytest.mark.parametrize("specname", [None, "hpt_trial_ended"])
@pytest.mark.parametrize("generator", [True, False])  # pluggy itself refuses a wrapper that does not yield
def test_a_wrapper_is_refused_naming_the_plugin_and_the_hook(
    option: str, specname: str | None, generator: bool
) -> None:
    def around(event: Any) -> Any:
        yield

    def plain(event: Any) -> None:
        pass

    class Watch:
        name = "watch"

    watch = Watch()
    attr = "around" if specname else "hpt_trial_ended"
    setattr(watch, attr, hpt.hookimpl(specname=specname, **{option: True})(around if generator else plain))
    with pytest.raises(hpt.PluginError) as info:
        HookRelay([Mark("fine", Log()), watch])
    message = str(info.value)
    assert "'watch'" in message and "'hpt_trial_ended'" in message and f"{option}=True" in message


@pytest.mark.parametrize(
    ("opts", "attr", "words"),
    [
        ({"tryfirst": True, "trylast": True}, "hpt_trial_ended", "both tryfirst=True and trylast=True"),
        ({"specname": "hpt_trial_finished"}, "on_end", "'hpt_trial_finished' as a hook but no hook has that name"),
        ({}, "on_end", "'on_end' is marked as a hook but no hook has that name"),
    ],
)
def test_a_mark_that_cannot_work_is_refused_with_a_clear_message(opts: dict[str, Any], attr: str, words: str) -> None:
    class Watch:
        name = "watch"

    def hook(event: Any) -> None:
        raise AssertionError("never called")

    watch = Watch()
    setattr(watch, attr, hpt.hookimpl(**opts)(hook))
    with pytest.raises(hpt.PluginError, match="'watch'") as info:
        HookRelay([watch])
    assert words in str(info.value)


def test_no_lifecycle_hook_is_firstresult_or_historic() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in LIFECYCLE_HOOKS:
        spec = getattr(pm.hook, name).spec
        assert spec is not None, name
        assert not spec.opts["firstresult"], name  # every implementation is called, async ones too
        assert not spec.opts["historic"], name


async def test_isolation_holds_whatever_the_order(caplog: pytest.LogCaptureFixture) -> None:
    log = Log()

    class Broken:
        name = "broken"

        @hpt.hookimpl(tryfirst=True)
        async def hpt_trial_ended(self) -> None:
            raise ValueError("async bug")

    relay = HookRelay([Mark("a", log), Broken(), Mark("z", log, trylast=True)])
    for _ in range(2):
        pending = relay.trial_ended(EVENT, STUDY)  # type: ignore[misc]
        assert pending is not None
        await pending
    assert log.calls == ["a", "z", "a", "z"]
    assert relay.errors == {"broken.hpt_trial_ended": 2}
    assert caplog.text.count("ValueError: async bug") == 1


async def test_an_interrupted_delivery_in_pluggy_order_resumes_without_repeats() -> None:
    log = Log()
    entered = anyio.Event()

    class Slow:
        name = "slow"

        @hpt.hookimpl(tryfirst=True)
        async def hpt_trial_ended(self) -> None:
            log.calls.append("slow")
            entered.set()
            await anyio.sleep_forever()

    relay = HookRelay([Mark("a", log), Mark("z", log, trylast=True), Slow(), Mark("b", log)])
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
    assert log.calls == ["slow"] and progress[1] == 1
    assert fire(EVENT, STUDY, progress) is None
    assert log.calls == ["slow", "a", "b", "z"] and progress[1] == 4
    assert fire(EVENT, STUDY, progress) is None
    assert log.calls == ["slow", "a", "b", "z"]


def test_a_plain_implementation_interrupted_by_a_base_exception_is_not_called_again() -> None:
    log = Log()

    class Interrupt(BaseException):
        pass

    class Stops:
        name = "stops"

        @hpt.hookimpl
        def hpt_trial_ended(self) -> None:
            log.calls.append("stops")
            raise Interrupt

    relay = HookRelay([Mark("a", log), Stops(), Mark("b", log)])
    progress = [0, 0]
    with pytest.raises(Interrupt):
        relay.trial_ended(EVENT, STUDY, progress)  # type: ignore[misc]
    assert log.calls == ["a", "stops"] and progress[1] == 2
    assert relay.trial_ended(EVENT, STUDY, progress) is None  # type: ignore[misc]
    assert log.calls == ["a", "stops", "b"] and relay.errors == {}


async def test_tracing_logs_a_delivery_once_even_when_it_awaits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    log = Log()
    relay = HookRelay([Mark("a", log, async_=True), Mark("b", log)])
    with caplog.at_level(logging.DEBUG, logger="hpt_async"):
        pending = relay.trial_ended(EVENT, STUDY)  # type: ignore[misc]
        assert pending is not None
        await pending
    assert log.calls == ["a", "b"]
    assert caplog.text.count("hook hpt_trial_ended(event=") == 1
