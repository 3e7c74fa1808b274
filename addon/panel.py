"""Properties > Output > Framehive: the scene's network settings, its price, and its job's progress."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import blender_access, job_operators, operators, session
from .job_watch import JobStatus
from .vocabulary import Device, JobState, Policy

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import IconItems


def _fetch_unverified(settings: FramehiveSceneSettings, _context: bpy.types.Context) -> None:
    """The artist ticked or unticked Fetch Unverified Frames: tell the watcher, for the scene's job."""
    if settings.job_id:
        session.get().watcher.fetch_unverified(settings.job_id, settings.unverified)


class FramehiveSceneSettings(bpy.types.PropertyGroup):
    """Per-scene settings, saved in the .blend (``scene.framehive``)."""

    priority: IntProperty(  # type: ignore[valid-type]
        name="Priority", default=50, min=0, max=100,
        description="Higher runs first among your jobs (0-100)")
    policy: EnumProperty(  # type: ignore[valid-type]
        name="Verification",
        # As coordinator/verification/commit.py has them (docs/verification.md, Policies).
        items=[(Policy.ADAPTIVE, "Adaptive", "New workers are always checked; trusted ones are sampled (at least 5%)"),
               (Policy.CIRCLE, "Circle", "Each worker's first work in the job is checked, the rest is not"),
               (Policy.FULL, "Full", "Every frame is rendered twice by different owners")],
        default=Policy.DEFAULT, description="How the network checks the frames it renders for you")
    chunk: IntProperty(  # type: ignore[valid-type]
        name="Frames per Task", default=0, min=0, max=10_000,
        description="Frames one worker renders in a row; 0 uses the add-on preference")
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device",
        items=[(Device.ANY, "Any", "GPU and CPU workers"), (Device.GPU, "GPU Only", "Only workers rendering on a GPU"),
               (Device.CPU, "CPU Only", "Only workers rendering on the CPU")],
        default=Device.DEFAULT, description="Which workers may render the job")
    max_workers: IntProperty(  # type: ignore[valid-type]
        name="Max Workers", default=0, min=0, max=10_000,
        description="At most this many workers render the job at once; 0: as many as are free")
    blender_version: StringProperty(  # type: ignore[valid-type]
        name="Blender Version", default="", maxlen=40,
        description="Render only on this Blender: 5.0 (any 5.0.x) or 5.0.1 (that release). Empty: any Blender at "
                    "least as new as the one that saved the file")
    job_id: IntProperty(  # type: ignore[valid-type]
        name="Job", default=0, min=0, description="The last job this scene was submitted as")
    unverified: BoolProperty(  # type: ignore[valid-type]
        name="Fetch Unverified Frames", default=False, update=_fetch_unverified,
        description="Also download the job's frames that no other owner has checked yet (they may be wrong or "
                    "faked), into an 'unverified' folder next to the frames, named *.UNVERIFIED.png; each is "
                    "replaced by the verified frame once it is checked")


class FRAMEHIVE_PT_render(bpy.types.Panel):
    bl_label = "Framehive"
    bl_idname = "FRAMEHIVE_PT_render"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    def draw(self, context: bpy.types.Context) -> None:
        layout, scene = self.layout, context.scene
        if layout is None or scene is None:  # Blender draws a panel with both; the stubs cannot know
            return
        settings = blender_access.settings(scene)
        live = session.get()

        col = layout.column()
        frames = operators.frame_numbers(scene)
        step = f", every {scene.frame_step}" if scene.frame_step > 1 else ""
        col.label(text=f"Frames {scene.frame_start}-{scene.frame_end}{step} ({len(frames)}, from the scene)",
                  icon="RENDER_ANIMATION")
        col.prop(settings, "priority")
        col.prop(settings, "policy")
        col.prop(settings, "chunk")
        col.prop(settings, "device")
        col.prop(settings, "max_workers")
        col.prop(settings, "blender_version")

        account = live.account
        if account.price_per_frame is not None:
            price = account.price_per_frame * len(frames)
            short = account.balance is not None and account.balance < price
            col.label(text=f"Price {price} points · balance {account.balance}",
                      icon="ERROR" if short else "FUND")
        elif account.error:
            col.label(text=f"Account: {account.error}", icon="ERROR")

        if live.submission is not None:
            layout.progress(factor=live.submission_fraction, text=live.submission_text or "Submitting…")
        else:
            layout.operator(operators.FRAMEHIVE_OT_render_on_network.bl_idname, icon="RENDER_ANIMATION")
        if settings.job_id:
            self._draw_job(layout, settings, live.statuses.get(settings.job_id))

    @staticmethod
    def _draw_job(layout: bpy.types.UILayout, settings: FramehiveSceneSettings, status: JobStatus | None) -> None:
        job_id = settings.job_id
        box = layout.box()
        if status is None:
            box.label(text=f"Job {job_id}: waiting for news…", icon="TIME")
            return
        done = status.state == JobState.COMPLETED
        box.label(text=f"Job {job_id}: {status.state}", icon="CHECKMARK" if done else "INFO")
        box.progress(factor=status.fraction, text=f"{status.verified} / {status.total} verified")
        box.label(text=f"rendered, awaiting checks {status.rendered} · failed {status.failed} · "
                       f"downloaded {status.downloaded}")
        if status.eta_seconds is not None:
            box.label(text=f"about {_duration(status.eta_seconds)} left", icon="PREVIEW_RANGE")
        if status.waiting:
            _draw_lines(box, f"Waiting: {status.waiting}", icon="TIME")
        if status.rendered or status.unverified:
            box.prop(settings, "unverified")
        if status.unverified:
            box.label(text=f"{status.unverified} UNVERIFIED frame(s) in {status.output_dir}/unverified: not checked, "
                           "may be wrong or faked", icon="ERROR")
        if status.open_claims:
            box.label(text=f"{status.open_claims} claim(s) being checked: replaced frames are downloaded",
                      icon="QUESTION")
        if status.error:
            box.label(text=status.error, icon="ERROR")
        row = box.row()
        if status.state in (JobState.QUEUED, JobState.RUNNING):
            row.operator(job_operators.FRAMEHIVE_OT_cancel_job.bl_idname, icon="CANCEL").job_id = job_id
        if status.output_dir and status.downloaded:
            opener = row.operator(job_operators.FRAMEHIVE_OT_open_output.bl_idname, icon="FILE_FOLDER")
            opener.folder = status.output_dir
        if status.state == JobState.COMPLETED:
            row.operator(job_operators.FRAMEHIVE_OT_claim_frames.bl_idname, icon="QUESTION").job_id = job_id


def _draw_lines(layout: bpy.types.UILayout, text: str, icon: IconItems, width: int = 70) -> None:
    """A long message as several labels (a label never wraps), the icon on the first."""
    for i, line in enumerate(textwrap.wrap(text, width)):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


CLASSES = (FramehiveSceneSettings, FRAMEHIVE_PT_render)


def register_properties() -> None:
    # The stubs know neither the property added here nor what PointerProperty returns (a deferred property).
    bpy.types.Scene.framehive = bpy.props.PointerProperty(  # type: ignore[attr-defined,func-returns-value]
        type=FramehiveSceneSettings)


def unregister_properties() -> None:
    del bpy.types.Scene.framehive  # type: ignore[attr-defined]  # added by register_properties

