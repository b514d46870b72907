"""CudaContext across threads, on the fake pycuda (which models pycuda's context stack and the CUDA
driver's, per thread): one retained primary context per process, closes from any thread that
release it and leave no context current, close waiting for work in ``active``."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from fake_pycuda import PRIMARY_HANDLE, FakeCudaState, make_fake_pycuda
from yolo_trt_ros.inference.tensorrt import cuda_context
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, FakeCudaState]:
    """(fake pycuda.driver, state), with the fake's libcuda behind the driver-stack calls."""
    package, driver, state = make_fake_pycuda()
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    stack = cuda_context._DriverStack(state.libcuda)
    monkeypatch.setattr(cuda_context, "_driver_stack", lambda: stack)
    return driver, state


def _in_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` on a new thread; returns its result, re-raises its exception."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]
    return out.get("result")


def _nothing_current(state: FakeCudaState) -> bool:
    """No context on any thread's pycuda or driver stack."""
    return state.stack == 0 and state.driver_stack == 0


def test_one_primary_context_per_process(fake: tuple[Any, FakeCudaState]) -> None:
    driver, state = fake
    a, b = CudaContext(), CudaContext()
    assert state.retained == 1
    with a.active():
        assert driver.Context.get_current() is not None and state.driver_stack == 1
        with b.active():  # nested on one thread, another holder
            assert driver.mem_get_info()[1] == state.total_memory
        assert state.stack == 1
    assert _nothing_current(state)
    a.close()
    assert state.retained == 1 and not b.closed
    with b.active():
        driver.mem_alloc(16).free()
    b.close()
    assert state.retained == 0 and _nothing_current(state)


def test_close_on_the_same_thread_leaves_no_context_current(
    fake: tuple[Any, FakeCudaState],
) -> None:
    driver, state = fake
    ctx = CudaContext()
    with ctx.active():
        pass
    ctx.close()
    assert state.retained == 0
    assert driver.Context.get_current() is None
    assert _nothing_current(state), "the released context is still on the driver's stack"


def test_close_from_another_thread_releases_the_context(fake: tuple[Any, FakeCudaState]) -> None:
    driver, state = fake
    ctx = CudaContext()
    with ctx.active():
        driver.mem_alloc(64).free()
    _in_thread(ctx.close)
    assert ctx.closed
    assert state.retained == 0, "the retain leaked"
    assert _nothing_current(state)


def test_created_and_used_on_one_thread_closed_on_another(
    fake: tuple[Any, FakeCudaState],
) -> None:
    _, state = fake

    def configure() -> CudaContext:
        ctx = CudaContext()
        with ctx.active():
            pass
        return ctx

    ctx = _in_thread(configure)
    ctx.close()
    assert state.retained == 0 and _nothing_current(state)


def test_close_waits_for_work_running_on_another_thread(fake: tuple[Any, FakeCudaState]) -> None:
    driver, state = fake
    ctx = CudaContext()
    entered, finish, closed = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def work() -> None:
        with ctx.active():
            entered.set()
            assert finish.wait(10)
            driver.mem_alloc(8).free()  # still inside: the context must still be retained
            seen.append("work done")

    worker = threading.Thread(target=work)
    worker.start()
    assert entered.wait(10)

    def close() -> None:
        ctx.close()
        seen.append("closed")
        closed.set()

    closer = threading.Thread(target=close)
    closer.start()
    time.sleep(0.1)
    assert not closed.is_set(), "close did not wait for the work in active()"
    assert state.retained == 1
    finish.set()
    worker.join(10)
    closer.join(10)
    assert seen == ["work done", "closed"]
    assert state.retained == 0 and _nothing_current(state)


def test_close_inside_active_on_the_same_thread(fake: tuple[Any, FakeCudaState]) -> None:
    driver, state = fake
    ctx = CudaContext()
    with ctx.active(), ctx.active():
        ctx.close()
        assert driver.Context.get_current() is None
    assert state.retained == 0 and _nothing_current(state)
    with pytest.raises(RuntimeError, match="closed"), ctx.active():
        pass


def test_double_close_and_use_after_close(fake: tuple[Any, FakeCudaState]) -> None:
    _, state = fake
    ctx = CudaContext()
    ctx.close()
    ctx.close()
    _in_thread(ctx.close)
    assert state.retained == 0 and _nothing_current(state)
    with pytest.raises(RuntimeError, match="closed"):
        ctx.mem_info()


def test_a_context_current_before_stays_current(fake: tuple[Any, FakeCudaState]) -> None:
    """A caller's own context (here the primary context, retained and pushed outside
    CudaContext) is current again, on both stacks, after a CudaContext releases the process's
    hold."""
    driver, state = fake
    outer = driver.Device(0).retain_primary_context()
    outer.push()
    ctx = CudaContext()
    with ctx.active():
        driver.mem_alloc(8).free()
    ctx.close()
    assert state.retained == 1
    assert driver.Context.get_current() is outer
    assert state.stack == 1 and state.stacks().driver == [PRIMARY_HANDLE]
    driver.Context.pop()
    cuda_context.release_primary_context(driver, outer)
    assert state.retained == 0 and _nothing_current(state)


def test_many_threads_sharing_and_closing(fake: tuple[Any, FakeCudaState]) -> None:
    """Eight holders used from eight threads at once, each closed from a thread it never ran on,
    while the others may still be at work."""
    driver, state = fake
    contexts = [CudaContext() for _ in range(8)]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def use(i: int) -> None:
        start.wait(10)
        for _ in range(50):
            try:
                with contexts[i].active():
                    driver.mem_alloc(4).free()
            except RuntimeError as exc:  # closed by the next thread: stop using it
                if "closed" not in str(exc):
                    errors.append(exc)
                break
        contexts[i - 1].close()

    threads = [threading.Thread(target=use, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert all(ctx.closed for ctx in contexts)
    assert state.retained == 0 and _nothing_current(state)
    assert state.device_allocations == {}


def test_missing_device(fake: tuple[Any, FakeCudaState]) -> None:
    _, state = fake
    with pytest.raises(RuntimeError, match="CUDA device 1 not found"):
        CudaContext(1)
    assert state.retained == 0
