"""A create answered 5xx makes Marionette look in Meshy's task list before sending it again. With several
jobs at once (and several Blender windows on one journal), the list can show another job's fresh task
that this window does not know yet: it must never be adopted, or two jobs share one paid task and one
input is never generated (found by the soak test: 200 jobs, 199 distinct tasks)."""

from __future__ import annotations

from pathlib import Path

from addon.core import png
from addon.core.models import JobState
from tests.emulator import Emulator
from tests.unit.fault_matrix import make_runner, submit, wait, wait_for

CREATE = r"^/openapi/v1/image-to-3d$"


def test_a_5xx_create_never_adopts_a_task_another_window_made(tmp_path: Path, emu: Emulator) -> None:
    first, second = make_runner(tmp_path), make_runner(tmp_path)  # two Blender windows, one user folder
    try:
        emu.meshy.pending_polls = 10**6  # tasks stay queued: nothing finishes while the jobs are checked
        # The other window's create makes its task at once, but its answer takes 1.5 s to arrive.
        emu.inject_fault("POST", CREATE, "delay", seconds=1.5, times=1)
        other = submit(second, emu, "meshy", files=[png.encode_rgba8(4, 4, bytes([10, 200, 40, 255]) * 16)])
        wait_for(lambda: len(emu.meshy.tasks) == 1, what="the other window's task on Meshy")
        # Meanwhile this window's create is answered 503: Meshy's list shows one task of the right kind made
        # a moment ago, unknown to every job in the journal (its owner has not had the answer yet).
        emu.inject("POST", CREATE, status=503, body={"message": "Service Unavailable"}, times=1)
        mine = submit(first, emu, "meshy")
        wait_for(lambda: bool(getattr(first.store.get(mine.id).task("image"), "remote_id", None)),
                 timeout=20, what="this window's task id")
        own = first.store.get(mine.id).task("image").remote_id  # type: ignore[union-attr]
        wait_for(lambda: bool(getattr(second.store.get(other.id).task("image"), "remote_id", None)),
                 timeout=20, what="the other window's task id")
        theirs = second.store.get(other.id).task("image").remote_id  # type: ignore[union-attr]
        assert own != theirs, "the job adopted the task another window's job had made"
        assert emu.count("POST", CREATE) == 3  # the other's, the 503, and this job's own create sent again
        assert len(emu.meshy.tasks) == 2
        emu.meshy.pending_polls = 0
        for task in emu.meshy.tasks.values():
            task.pending_polls = 0
        assert wait(first, mine.id, timeout=30).state is JobState.SUCCEEDED
    finally:
        first.shutdown()
        second.shutdown()
