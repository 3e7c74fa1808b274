"""The add-on's operators: Render on network, Test connection, Cancel, Open output folder, Claim bad frames.

``framehive.render_on_network`` never touches the artist's open file: it saves a copy to a temporary folder
and packs that (addon/packing.py). Invoked from the UI it runs modal: a background thread packs and
uploads while a timer drains its updates into the status bar, and ESC aborts. Executed from a script it
runs synchronously, and with ``wait=True`` it also waits for the job and downloads the verified frames
(headless Blender has no timers).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import connection_check, preferences, session
from .client import ApiError, Client
from .submission import Options, Submission, Update

MODAL_TICK = 0.1  # seconds between drains of the submission's updates
WAIT_TIMEOUT = 24 * 3600.0  # wait=True gives up after a day


# ---------------------------------------------------------------------- helpers (main thread only)


def frames_spec(scene: bpy.types.Scene) -> str:
    """The scene's frame range as the coordinator's range text (the step honoured)."""
    start, end, step = scene.frame_start, scene.frame_end, max(1, scene.frame_step)
    if step == 1:
        return f"{start}-{end}" if end > start else str(start)
    return ",".join(str(frame) for frame in range(start, end + 1, step))


def frame_numbers(scene: bpy.types.Scene) -> list[int]:
    return list(range(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step)))


def output_paths(scene: bpy.types.Scene, prefs: preferences.FRAMEHIVE_AP_preferences) -> dict[int, str]:
    """Where each verified frame goes: where a local render would write it (as PNG), or the chosen folder."""
    if prefs.download == "NONE":
        return {}
    paths = {}
    for frame in frame_numbers(scene):
        path = bpy.path.abspath(scene.render.frame_path(frame=frame))
        root, ext = os.path.splitext(path)
        if scene.render.use_file_extension and ext.lower() != ".png":
            path = root + ".png"  # the network delivers PNG whatever the scene's output format is
        if prefs.download == "FOLDER":
            path = os.path.join(bpy.path.abspath(prefs.download_folder), os.path.basename(path))
        paths[frame] = path
    return paths


def why_not_submit(context: bpy.types.Context) -> str:
    """Why Render on network is disabled right now, or '' if it may run."""
    if not bpy.app.online_access:
        return connection_check.ENABLE_ONLINE_ACCESS
    prefs = preferences.get(context)
    if not prefs.coordinator_url.strip() or not prefs.token.strip():
        return "set the coordinator URL and your token in the add-on's preferences"
    if session.get().submission is not None:
        return "a submission is already running"
    if context.scene is None:
        return "no scene"
    return ""


# ---------------------------------------------------------------------- operators


class FRAMEHIVE_OT_render_on_network(bpy.types.Operator):
    """Pack this scene with its files, upload it and render it on the Framehive network"""

    bl_idname = "framehive.render_on_network"
    bl_label = "Render on Network"
    bl_options = {"REGISTER"}

    wait: BoolProperty(  # type: ignore[valid-type]
        name="Wait", default=False, options={"SKIP_SAVE"},
        description="Wait for the job and download its verified frames before returning (scripts)")
    allow_missing: BoolProperty(  # type: ignore[valid-type]
        name="Submit with Missing Files", default=False, options={"SKIP_SAVE"},
        description="Submit even though some files the scene uses are missing (they render pink)")

    _submission: Submission | None = None
    _timer: bpy.types.Timer | None = None
    _paths: dict[int, str]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        reason = why_not_submit(context)
        if reason:
            cls.poll_message_set(reason)
        return not reason

    def _prepare(self, context: bpy.types.Context) -> Submission | None:
        prefs = preferences.get(context)
        scene = context.scene
        settings = scene.framehive
        client = session.get().sync(prefs).client()
        if client is None:
            self.report({"ERROR"}, "the coordinator URL is not valid: it must start with http:// or https://")
            return None
        workdir = Path(tempfile.mkdtemp(prefix="framehive-submit-"))
        name = bpy.path.display_name_from_filepath(bpy.data.filepath) or "untitled"
        copy = workdir / "source" / (bpy.path.basename(bpy.data.filepath) or "untitled.blend")
        copy.parent.mkdir(parents=True)
        # copy=True: the open file keeps its path and unsaved state; relative paths are remapped to the copy.
        bpy.ops.wm.save_as_mainfile(filepath=str(copy), copy=True, relative_remap=True)
        chunk = settings.chunk or prefs.default_chunk or None
        options = Options(frames=frames_spec(scene), chunk=chunk, priority=settings.priority,
                          policy=settings.policy, name=f"{name} / {scene.name}", allow_missing=self.allow_missing)
        self._paths = output_paths(scene, prefs)
        return Submission(client, copy, workdir, options)

    def execute(self, context: bpy.types.Context) -> set[str]:
        submission = self._prepare(context)
        if submission is None:
            return {"CANCELLED"}
        submission.run()
        result = self._finish(context, _last(submission))
        if result != {"FINISHED"} or not self.wait:
            return result
        job_id = context.scene.framehive.job_id
        status = session.get().watcher.wait(job_id, timeout=WAIT_TIMEOUT)
        session.get().statuses[job_id] = status
        if status.state != "completed":
            self.report({"ERROR"}, f"job {job_id} ended {status.state}: {status.error or 'see the coordinator'}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"job {job_id} completed: {status.downloaded} verified frames in {status.output_dir}")
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        submission = self._prepare(context)
        if submission is None:
            return {"CANCELLED"}
        self._submission = submission
        session.get().submission = submission
        submission.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(MODAL_TICK, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        context.workspace.status_text_set("Framehive: packing the scene (ESC to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        submission = self._submission
        assert submission is not None
        if event.type == "ESC":
            submission.abort()
            context.workspace.status_text_set("Framehive: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        live = session.get()
        while not submission.updates.empty():
            update = submission.updates.get_nowait()
            if update.kind in ("done", "error"):
                self._cleanup(context)
                return self._finish(context, update)
            live.submission_text = update.text
            if update.fraction is not None:
                live.submission_fraction = update.fraction
                context.window_manager.progress_update(int(update.fraction * 100))
            context.workspace.status_text_set(f"Framehive: {update.text} (ESC to cancel)")
        return {"RUNNING_MODAL"}

    def _cleanup(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)
        live = session.get()
        live.submission, live.submission_text, live.submission_fraction = None, "", 0.0

    def _finish(self, context: bpy.types.Context, update: Update) -> set[str]:
        if update.kind != "done" or update.job is None:
            self.report({"ERROR"}, f"Framehive: {update.text}")
            return {"CANCELLED"}
        job = update.job
        live = session.get()
        context.scene.framehive.job_id = int(job["id"])
        client = live.client()
        if self._paths and client is not None:
            live.watcher.follow(int(job["id"]), client.base_url, self._paths)
        live.refresh_account()
        self.report({"INFO"}, f"Framehive: {update.text}")
        return {"FINISHED"}


def _last(submission: Submission) -> Update:
    """The final update of a synchronous run (status updates before it are only progress)."""
    last = Update("error", "the submission ended without a result")
    while not submission.updates.empty():
        update = submission.updates.get_nowait()
        if update.kind in ("done", "error"):
            last = update
    return last


class FRAMEHIVE_OT_test_connection(bpy.types.Operator):
    """Check the coordinator URL and token: reachable, token accepted, versions compatible"""

    bl_idname = "framehive.test_connection"
    bl_label = "Test Connection"

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = preferences.get(context)
        verdict = connection_check.check(prefs.coordinator_url, prefs.token, bpy.app.online_access)
        prefs.last_check = verdict.message
        self.report({"INFO"} if verdict.ok else {"ERROR"}, verdict.message)
        if verdict.ok:
            session.get().refresh_account()
        return {"FINISHED"} if verdict.ok else {"CANCELLED"}


class _JobOperator(bpy.types.Operator):
    job_id: IntProperty(name="Job", min=1)  # type: ignore[valid-type]

    def client(self) -> Client:
        client = session.get().sync(preferences.get()).client()
        if client is None:
            raise ApiError(0, "not_configured", "set the coordinator URL and token in the preferences")
        return client


class FRAMEHIVE_OT_cancel_job(_JobOperator):
    """Cancel this job: unrendered frames are not rendered and their points come back"""

    bl_idname = "framehive.cancel_job"
    bl_label = "Cancel Job"

    def execute(self, context: bpy.types.Context) -> set[str]:
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

    def execute(self, context: bpy.types.Context) -> set[str]:
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

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self.frames.strip() or not self.reason.strip():
            self.report({"ERROR"}, "give the frames and a reason")
            return {"CANCELLED"}
        try:
            claim = self.client().claim(self.job_id, self.frames.strip(), self.reason.strip())
        except ApiError as exc:
            self.report({"ERROR"}, f"claim refused: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"claim {claim.get('id')} filed on job {self.job_id}: a trusted node will "
                              "render those frames again")
        return {"FINISHED"}


CLASSES = (FRAMEHIVE_OT_render_on_network, FRAMEHIVE_OT_test_connection, FRAMEHIVE_OT_cancel_job,
           FRAMEHIVE_OT_open_output, FRAMEHIVE_OT_claim_frames)
