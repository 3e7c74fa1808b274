"""The add-on panel's job box for a job that waits, drawn under real Blender (bpy) into a layout that records what
it is given (headless Blender has no window to draw in): the reason, wrapped; the Fetch Unverified Frames option
while frames await checks; the count of unverified copies on disk, marked as such."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bpy
import pytest
from framehive.addon import panel
from framehive.addon.job_watch import JobStatus

REASON = "frames 1-240 wait for a verifier of the renderer's device class: none online; one of another class " \
         "checks them from 14:05 UTC"


class Recorder:
    """Stands in for bpy.types.UILayout: keeps every label's text and every property drawn."""

    def __init__(self, lines: list[str] | None = None) -> None:
        self.lines = [] if lines is None else lines

    def box(self) -> Recorder:
        return self

    def row(self) -> Recorder:
        return self

    def label(self, text: str = "", icon: str = "") -> None:
        self.lines.append(text)

    def progress(self, factor: float = 0.0, text: str = "") -> None:
        self.lines.append(text)

    def prop(self, data: Any, name: str) -> None:
        self.lines.append(f"[{name}]")

    def operator(self, idname: str, icon: str = "") -> Any:
        self.lines.append(f"<{idname}>")
        return type("Properties", (), {})()


@pytest.fixture
def registered() -> Iterator[Any]:
    """The scene's Framehive settings, registered, for job 7."""
    bpy.utils.register_class(panel.FramehiveSceneSettings)
    panel.register_properties()
    settings = bpy.context.scene.framehive
    settings.job_id = 7
    yield settings
    panel.unregister_properties()
    bpy.utils.unregister_class(panel.FramehiveSceneSettings)


def status(**fields: Any) -> JobStatus:
    base = dict(job_id=7, state="running", total=240, verified=0, rendered=240, failed=0, downloaded=0,
                eta_seconds=None, output_dir="/tmp/shots")
    return JobStatus(**{**base, **fields})


def test_a_waiting_job_says_why_and_offers_its_unverified_frames(registered: Any) -> None:
    layout = Recorder()
    panel.FRAMEHIVE_PT_render._draw_job(layout, registered, status(waiting=REASON, unverified=3))
    start = next(i for i, line in enumerate(layout.lines) if line.startswith("Waiting: "))
    option = layout.lines.index("[unverified]")
    wrapped = layout.lines[start:option]
    assert " ".join(wrapped) == f"Waiting: {REASON}" and len(wrapped) > 1, layout.lines
    assert all(len(line) <= 70 for line in wrapped), "a label never wraps: the panel does"
    assert layout.lines[option + 1] == "3 UNVERIFIED frame(s) in /tmp/shots/unverified: not checked, may be wrong " \
                                       "or faked"


def test_a_job_that_does_not_wait_shows_neither(registered: Any) -> None:
    layout = Recorder()
    panel.FRAMEHIVE_PT_render._draw_job(layout, registered, status(state="completed", verified=240, rendered=0))
    assert not any("Waiting" in line or "UNVERIFIED" in line for line in layout.lines)
    assert "[unverified]" not in layout.lines
