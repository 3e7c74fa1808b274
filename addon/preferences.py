"""The add-on's preferences: where the coordinator is, who you are, and where frames go."""

from __future__ import annotations

from typing import cast

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import connection_check

PACKAGE = __package__ or "framehive"  # bl_ext.user_default.framehive once installed as an extension


class FRAMEHIVE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    coordinator_url: StringProperty(  # type: ignore[valid-type]
        name="Coordinator URL", default="http://127.0.0.1:8400",
        description="The Framehive coordinator to render on, e.g. http://render.example:8400")
    token: StringProperty(  # type: ignore[valid-type]
        name="Token", subtype="PASSWORD", default="",
        description="Your user token (fhu_...), from the network's admin. Stored in Blender's preferences")
    default_chunk: IntProperty(  # type: ignore[valid-type]
        name="Frames per Task", default=0, min=0, max=10_000,
        description="How many frames one worker renders in a row; 0 lets the coordinator choose")
    download: EnumProperty(  # type: ignore[valid-type]
        name="Verified Frames",
        items=[("OUTPUT", "Scene Output Path", "Save each verified frame where a local render would write it "
                                              "(Output Properties > Output)"),
               ("FOLDER", "Folder", "Save verified frames into the folder below"),
               ("NONE", "Keep on Network", "Do not download; fetch them later with 'framehive download'")],
        default="OUTPUT", description="What happens to frames once they are verified")
    download_folder: StringProperty(  # type: ignore[valid-type]
        name="Folder", subtype="DIR_PATH", default="//framehive/",
        description="Where verified frames go when 'Folder' is chosen (// is the .blend's folder)")
    last_check: StringProperty(default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "coordinator_url")
        layout.prop(self, "token")
        row = layout.row()
        row.operator("framehive.test_connection", icon="LINKED")
        if self.last_check:
            layout.label(text=self.last_check, icon="INFO")
        if not bpy.app.online_access:
            layout.label(text=connection_check.ENABLE_ONLINE_ACCESS, icon="ERROR")
        layout.separator()
        layout.prop(self, "default_chunk")
        layout.prop(self, "download")
        if self.download == "FOLDER":
            layout.prop(self, "download_folder")


def get(context: bpy.types.Context | None = None) -> FRAMEHIVE_AP_preferences:
    """This add-on's preferences."""
    context = context or bpy.context
    preferences = context.preferences
    assert preferences is not None, "Blender has no preferences (it always has, also in the background)"
    # The stubs know only AddonPreferences; Blender registered this add-on's own class for it.
    return cast(FRAMEHIVE_AP_preferences, preferences.addons[PACKAGE].preferences)


CLASSES = (FRAMEHIVE_AP_preferences,)
