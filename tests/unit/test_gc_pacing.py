"""A run collects cyclic garbage less often while it holds a feed's records, and puts the pace back after."""

from __future__ import annotations

import gc
import os
import threading

import pytest

from aggregator.ingest import RUN_GC_THRESHOLD, fewer_collections


def test_the_pace_is_set_while_a_run_holds_it_and_put_back_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == RUN_GC_THRESHOLD
        assert gc.isenabled()  # less often, never off
    assert gc.get_threshold() == before


def test_overlapping_runs_put_it_back_only_when_the_last_ends() -> None:
    before = gc.get_threshold()
    first_in, second_out = threading.Event(), threading.Event()

    def other() -> None:
        with fewer_collections():
            first_in.set()
            second_out.wait(5)

    t = threading.Thread(target=other)
    t.start()
    assert first_in.wait(5)
    with fewer_collections():
        pass
    assert gc.get_threshold() == RUN_GC_THRESHOLD  # the other run still holds it
    second_out.set()
    t.join(5)
    assert gc.get_threshold() == before


def test_a_failed_run_puts_it_back_too() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the feed broke")
    assert gc.get_threshold() == before


def test_collection_turned_off_stays_off() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_a_child_forked_while_a_run_holds_the_pace_starts_with_the_usual_one() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        pid = os.fork()
        if pid == 0:  # the child: the usual pace, and a run of its own can take and give back the pace
            ok = gc.get_threshold() == before
            with fewer_collections():
                ok = ok and gc.get_threshold() == RUN_GC_THRESHOLD
            os._exit(0 if ok and gc.get_threshold() == before else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
