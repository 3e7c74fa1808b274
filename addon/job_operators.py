"""The add-on's operators on a submitted job: Cancel, Open output folder, Claim bad frames.

Each talks to the coordinator once, from Blender's main thread, and leaves the waiting to the job watcher
(addon/job_watch.py) unless a script asks to wait.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import blender_access, preferences, session
from .client import ApiError, Client
from .operators import output_paths, wait_for_job
from .vocabulary import ClaimState

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class _JobOperator(bpy.types.Operator):
    job_id: IntProperty(name="Job", min=1)  # type: ignore[valid-type]

    def client(self) -> Client:
        """A client for the preferences' coordinator and token (InvalidSetting, an ApiError, if unusable)."""
        return session.get().sync(preferences.get()).require_client()


class FRAMEHIVE_OT_cancel_job(_JobOperator):
    """Cancel this job: unrendered frames are not rendered and their points come back"""

    bl_idname = "framehive.cancel_job"
    bl_label = "Cancel Job"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        try:
            job = self.client().cancel(self.job_id)
        except ApiError as exc:
            self.report({"ERROR"}, f"could not cancel job {self.job_id}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"job {self.job_id} is {job.get('state')}")
        session.get().watcher.wake()  # the background round shows the new state; never block the UI
        return {"FINISHED"}


class FRAMEHIVE_OT_open_output(bpy.types.Operator):
    """Open the folder the verified frames were saved to"""

    bl_idname = "framehive.open_output"
    bl_label = "Open Output Folder"

    folder: StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if not self.folder or not os.path.isdir(self.folder):
            self.report({"ERROR"}, f"no such folder: {self.folder or '(none)'}")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=self.folder)
        return {"FINISHED"}


class FRAMEHIVE_OT_claim_frames(_JobOperator):
    """Dispute delivered frames that look wrong: a trusted node renders them again"""

    bl_idname = "framehive.claim_frames"
    bl_label = "Claim Bad Frames"

    frames: StringProperty(name="Frames", description="Frames that look wrong, e.g. 3,7 or 10-12")  # type: ignore[valid-type]
    reason: StringProperty(name="Reason", description="What is wrong with them")  # type: ignore[valid-type]
    wait: BoolProperty(  # type: ignore[valid-type]
        name="Wait", default=False, options={"SKIP_SAVE"},
        description="Wait until the claim is decided and the frames it replaced are downloaded (scripts)")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        return blender_access.window_manager(context).invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if not self.frames.strip() or not self.reason.strip():
            self.report({"ERROR"}, "give the frames and a reason")
            return {"CANCELLED"}
        try:
            client = self.client()
            claim = client.claim(self.job_id, self.frames.strip(), self.reason.strip())
        except ApiError as exc:
            self.report({"ERROR"}, f"claim refused: {exc}")
            return {"CANCELLED"}
        self._follow(context, client)
        said = f"claim {claim.get('id')} filed on job {self.job_id}: a trusted node renders frames " \
               f"{claim.get('frames')} again"
        if not self.wait:
            self.report({"INFO"}, f"{said}; frames it replaces are downloaded")
            return {"FINISHED"}
        status = wait_for_job(self.job_id)
        try:
            decided = next((c for c in client.claims(self.job_id) if c.get("id") == claim.get("id")), {})
        except ApiError as exc:
            decided = {"state": "unknown", "outcome": str(exc)}
        if not status.finished or decided.get("state") not in ClaimState.DECIDED:
            self.report({"ERROR"}, f"{said}; waiting stopped: {status.error or decided.get('outcome')}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"claim {claim.get('id')} {decided['state']}: {decided.get('outcome')}")
        return {"FINISHED"}

    def _follow(self, context: bpy.types.Context, client: Client) -> None:
        """Have the job watcher bring home the frames the claim replaces: the job may have been forgotten once
        its frames were home. Frames of the scene's own job go to its output paths (those already there with
        the right bytes are kept); a job followed still keeps the paths it had."""
        live = session.get()
        if self.job_id not in live.watcher.followed():
            scene = context.scene
            own = scene is not None and blender_access.settings(scene).job_id == self.job_id
            paths = output_paths(scene, preferences.get(context)) if scene is not None and own else {}
            live.watcher.follow(self.job_id, client.base_url, paths)
        live.watcher.wake()


CLASSES = (FRAMEHIVE_OT_cancel_job, FRAMEHIVE_OT_open_output, FRAMEHIVE_OT_claim_frames)
