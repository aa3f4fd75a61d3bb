"""A SyncClient made before a fork (gunicorn ``--preload``, uWSGI's default) works in the child and
still works in the parent (issue 9, item 3). Each child has a hard deadline: a hang fails the test
instead of blocking the suite."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

from producer_client.errors import ResultTimeout
from producer_client.sync import SyncClient
from tests.support.procs import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PRO = {"user_tier": "pro", "task_type": "chat", "max_latency_ms": 30000}
CHILD_DEADLINE_S = 30.0
PARENT_PROMPT_S = 5.0  # one job on an idle worker: well under a second
# Exit codes of a child: what went wrong, for the assertion message.
CHILD_OK, CHILD_NOT_SUCCEEDED, CHILD_RAISED = 0, 3, 4


@pytest.fixture()
def sync_client(redis_url: str) -> Iterator[SyncClient]:
    client = SyncClient.from_url(redis_url)
    yield client
    client.close()


def submit_and_wait(client: SyncClient, prompt: str) -> bool:
    job_id = client.submit(prompt=prompt, context=PRO)
    return client.result(job_id, timeout=20).status == "succeeded"


def parent_still_works(client: SyncClient) -> None:
    """A job from the parent after its children ran, promptly: a child that closed the parent's
    event loop objects (they share the epoll instance) leaves the parent's loop deaf to wake-ups."""
    started = time.monotonic()
    assert submit_and_wait(client, "hello from the parent after the fork")
    took = time.monotonic() - started
    assert took < PARENT_PROMPT_S, f"the parent's next call took {took:.1f}s after a child ran"


def child_main(client: SyncClient) -> None:
    """Runs in the forked child: never returns into pytest, always leaves through ``os._exit``."""
    code = CHILD_RAISED
    try:
        code = CHILD_OK if submit_and_wait(client, f"hello from child {os.getpid()}") else CHILD_NOT_SUCCEEDED
        gc.collect()  # what a long-lived child does sooner or later: finalize what it dropped
    except BaseException:
        traceback.print_exc()  # shown with the failing test's captured output
    finally:
        os._exit(code)


def wait_child(pid: int, deadline_s: float) -> int | None:
    """The child's exit code, or None (after SIGKILLing it) if it was still running at the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_forked_child_uses_the_parents_sync_client(worker: WorkerProcess, sync_client: SyncClient) -> None:
    assert submit_and_wait(sync_client, "hello from the parent before the fork")
    pid = os.fork()
    if pid == 0:
        child_main(sync_client)
    code = wait_child(pid, CHILD_DEADLINE_S)
    assert code is not None, f"the child hung for {CHILD_DEADLINE_S:g}s on the parent's SyncClient"
    assert code == CHILD_OK, f"child exited {code}"
    parent_still_works(sync_client)


def test_fork_while_the_parent_is_waiting_on_a_result(worker: WorkerProcess, sync_client: SyncClient) -> None:
    """A fork in the middle of a blocking wait (a BLPOP on a pooled connection): the child must not
    share that connection, and the parent's wait must end as it would have."""
    assert submit_and_wait(sync_client, "warm up the pool")
    outcome: list[BaseException | None] = []

    def wait_for_nothing() -> None:
        try:
            sync_client.result("never-submitted", timeout=4)
            outcome.append(None)
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_nothing)
    waiter.start()
    time.sleep(0.5)  # let the wait reach its BLPOP; forking earlier is the first test's case
    pid = os.fork()
    if pid == 0:
        child_main(sync_client)
    code = wait_child(pid, CHILD_DEADLINE_S)
    waiter.join(20)
    assert code is not None, "the child hung on a client forked during a wait"
    assert code == CHILD_OK, f"child exited {code}"
    assert not waiter.is_alive() and len(outcome) == 1 and isinstance(outcome[0], ResultTimeout), outcome
    parent_still_works(sync_client)


def _mp_child(client: SyncClient) -> None:
    assert submit_and_wait(client, f"hello from multiprocessing child {os.getpid()}")
    gc.collect()


def test_multiprocessing_fork_children_use_the_parents_sync_client(
    worker: WorkerProcess, sync_client: SyncClient
) -> None:
    """What a pre-forking server does: several children at once, from one client made before."""
    assert submit_and_wait(sync_client, "hello from the parent")
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_mp_child, args=(sync_client,)) for _ in range(3)]
    for child in children:
        child.start()
    deadline = time.monotonic() + CHILD_DEADLINE_S
    for child in children:
        child.join(max(0.1, deadline - time.monotonic()))
    hung = [c.pid for c in children if c.is_alive()]
    for child in children:
        if child.is_alive():
            child.kill()
            child.join(5)
    assert not hung, f"children {hung} hung on the parent's SyncClient"
    assert [c.exitcode for c in children] == [0, 0, 0]
    parent_still_works(sync_client)
