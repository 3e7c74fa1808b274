"""The add-on's operators for submitting: Render on network, its file confirmation, Test connection.

``framehive.render_on_network`` never touches the artist's open file: it saves a copy to a temporary folder
and packs that (addon/packing.py). Invoked from the UI it runs modal: a background thread packs and
uploads while a timer drains its updates into the status bar, and ESC aborts. Executed from a script it
runs synchronously, and with ``wait=True`` it also waits for the job and downloads the verified frames
(headless Blender has no timers).

Files from outside the .blend's folder are never uploaded unasked (a .blend may point an image at any file
on the disk), nor is a scene with missing files submitted: packing stops before copying anything, and from
the UI a dialog (``framehive.confirm_files``) lists the files and submits again with exactly those allowed;
a script passes ``allow_outside=True`` / ``allow_missing=True``, or gets an error listing them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, StringProperty

from . import blender_access, connection_check, preferences, session
from .client import InvalidSetting
from .job_watch import JobStatus
from .submission import Options, Submission, Update
from .vocabulary import JobState

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

MODAL_TICK = 0.1  # seconds between drains of the submission's updates
WAIT_TIMEOUT = 24 * 3600.0  # wait=True gives up after a day
FILES_SHOWN = 12  # the confirmation dialog lists this many files of each kind, and counts the rest


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


def wait_for_job(job_id: int) -> JobStatus:
    """Poll until the job is over, no claim on it is open and its verified frames are home (``wait=True``)."""
    live = session.get()
    status = live.watcher.wait(job_id, timeout=WAIT_TIMEOUT)
    live.statuses[job_id] = status
    return status


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
    allow_outside: BoolProperty(  # type: ignore[valid-type]
        name="Upload Files from Outside", default=False, options={"SKIP_SAVE"},
        description="Upload the files the scene uses from outside the .blend's folder without asking (scripts; "
                    "from the panel a dialog lists them first)")
    approved_outside: StringProperty(  # type: ignore[valid-type]
        name="Approved Files", default="", options={"HIDDEN", "SKIP_SAVE"},
        description="The files from outside the .blend's folder the artist allowed, one real path a line")

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
        scene = blender_access.scene(context)
        settings = blender_access.settings(scene)
        try:
            client = session.get().sync(prefs).require_client()
        except InvalidSetting as exc:
            self.report({"ERROR"}, f"Framehive: {exc.message}")
            return None
        # The open file's folder: what may be uploaded unasked (nothing, for a file never saved).
        project = Path(bpy.data.filepath).parent if bpy.data.filepath else None
        workdir = Path(tempfile.mkdtemp(prefix="framehive-submit-"))
        name = bpy.path.display_name_from_filepath(bpy.data.filepath) or "untitled"
        copy = workdir / "source" / (bpy.path.basename(bpy.data.filepath) or "untitled.blend")
        copy.parent.mkdir(parents=True)
        # copy=True: the open file keeps its path and unsaved state; relative paths are remapped to the copy.
        bpy.ops.wm.save_as_mainfile(filepath=str(copy), copy=True, relative_remap=True)
        chunk = settings.chunk or prefs.default_chunk or None
        approved = frozenset(line for line in self.approved_outside.splitlines() if line)
        options = Options(frames=frames_spec(scene), chunk=chunk, priority=settings.priority,
                          policy=settings.policy, name=f"{name} / {scene.name}", allow_missing=self.allow_missing,
                          allow_outside=True if self.allow_outside else approved,
                          blender_version=settings.blender_version.strip() or None,
                          max_workers=settings.max_workers or None, device=settings.device)
        self._paths = output_paths(scene, prefs)
        return Submission(client, copy, workdir, options, project=project)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        submission = self._prepare(context)
        if submission is None:
            return {"CANCELLED"}
        submission.run()
        result = self._finish(context, _last(submission), interactive=False)
        if result != {"FINISHED"} or not self.wait:
            return result
        job_id = blender_access.settings(blender_access.scene(context)).job_id
        status = wait_for_job(job_id)
        if not status.finished or status.state != JobState.COMPLETED:
            self.report({"ERROR"}, f"job {job_id} {status.state}: {status.error or 'see the coordinator'}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"job {job_id} completed: {status.downloaded} verified frames in {status.output_dir}")
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        submission = self._prepare(context)
        if submission is None:
            return {"CANCELLED"}
        self._submission = submission
        session.get().submission = submission
        submission.start()
        wm = blender_access.window_manager(context)
        self._timer = wm.event_timer_add(MODAL_TICK, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        blender_access.status_text(context, "Framehive: packing the scene (ESC to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        submission = self._submission
        assert submission is not None
        if event.type == "ESC":
            submission.abort()
            blender_access.status_text(context, "Framehive: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        live = session.get()
        while not submission.updates.empty():
            update = submission.updates.get_nowait()
            if update.kind in ("done", "error"):
                self._cleanup(context)
                return self._finish(context, update, interactive=True)
            live.submission_text = update.text
            if update.fraction is not None:
                live.submission_fraction = update.fraction
                blender_access.window_manager(context).progress_update(int(update.fraction * 100))
            blender_access.status_text(context, f"Framehive: {update.text} (ESC to cancel)")
        return {"RUNNING_MODAL"}

    def _cleanup(self, context: bpy.types.Context) -> None:
        wm = blender_access.window_manager(context)
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        blender_access.status_text(context, None)
        live = session.get()
        live.submission, live.submission_text, live.submission_fraction = None, "", 0.0

    def _finish(self, context: bpy.types.Context, update: Update, interactive: bool) -> set[OperatorReturnItems]:
        if update.kind != "done" or update.job is None:
            if update.needs_confirmation and interactive:
                self._ask(update)
                return {"CANCELLED"}
            allow = update.to_allow("allow_outside=True", "allow_missing=True")
            remedy = f". To submit anyway, call it with {allow}" if allow else ""
            self.report({"ERROR"}, f"Framehive: {update.text}{remedy}")
            return {"CANCELLED"}
        job = update.job
        live = session.get()
        blender_access.settings(blender_access.scene(context)).job_id = int(job["id"])
        client = live.client()
        if self._paths and client is not None:
            live.watcher.follow(int(job["id"]), client.base_url, self._paths)
        live.refresh_account()
        self.report({"INFO"}, f"Framehive: {update.text}")
        return {"FINISHED"}

    def _ask(self, update: Update) -> None:
        """Show the files to confirm; the dialog submits again with them allowed (and what was already)."""
        self.report({"WARNING"}, "Framehive: nothing was submitted yet: confirm the files the scene uses")
        bpy.ops.framehive.confirm_files(  # type: ignore[attr-defined]  # registered at run time
            "INVOKE_DEFAULT", outside="\n".join(update.outside), missing="\n".join(update.missing),
            approved=self.approved_outside, allow_missing=self.allow_missing)


class FRAMEHIVE_OT_confirm_files(bpy.types.Operator):
    """Submit the scene with these files: from outside the .blend's folder, or missing"""

    bl_idname = "framehive.confirm_files"
    bl_label = "Submit with These Files?"
    bl_options = {"INTERNAL"}

    outside: StringProperty(options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    missing: StringProperty(options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    approved: StringProperty(options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    allow_missing: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        return blender_access.window_manager(context).invoke_props_dialog(self, width=700, confirm_text="Submit")

    def draw(self, context: bpy.types.Context) -> None:
        if self.layout is None:
            return
        col = self.layout.column(align=True)
        outside, missing = self.outside.splitlines(), self.missing.splitlines()
        if outside:
            col.label(text=f"{len(outside)} file(s) from outside the .blend's folder would be uploaded:", icon="ERROR")
            _list_files(col, outside)
            col.label(text="Submit only if you expected these files to be part of the scene.")
        if missing:
            col.separator()
            col.label(text=f"{len(missing)} file(s) the scene uses are missing and would render magenta:",
                      icon="ERROR")
            _list_files(col, missing)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        approved = sorted({*self.approved.splitlines(), *self.outside.splitlines()} - {""})
        try:
            bpy.ops.framehive.render_on_network(  # type: ignore[attr-defined]  # registered at run time
                "INVOKE_DEFAULT", approved_outside="\n".join(approved),
                allow_missing=self.allow_missing or bool(self.missing))
        except RuntimeError as exc:  # its error report: passed on as ours, not as a Python traceback
            self.report({"ERROR"}, str(exc).removeprefix("Error: ").strip())
            return {"CANCELLED"}
        return {"FINISHED"}


def _list_files(layout: bpy.types.UILayout, files: list[str]) -> None:
    for path in files[:FILES_SHOWN]:
        layout.label(text=f"    {path}")
    if len(files) > FILES_SHOWN:
        layout.label(text=f"    … and {len(files) - FILES_SHOWN} more")


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

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        prefs = preferences.get(context)
        verdict = connection_check.check(prefs.coordinator_url, prefs.token, bpy.app.online_access)
        prefs.last_check = verdict.message
        self.report({"INFO"} if verdict.ok else {"ERROR"}, verdict.message)
        if verdict.ok:
            session.get().refresh_account()
        return {"FINISHED"} if verdict.ok else {"CANCELLED"}


CLASSES = (FRAMEHIVE_OT_render_on_network, FRAMEHIVE_OT_confirm_files, FRAMEHIVE_OT_test_connection)
