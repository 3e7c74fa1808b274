"""Run inside a fresh bpy process by test_drawing.py: install and enable the extension, then draw its panel (in
each state of a job), its preferences and its file-confirmation dialog into a layout that checks every call
against this Blender's own UILayout (headless Blender has no window, so no real layout to draw into).

The check is what Blender does with a call: the function exists, each keyword is one of its parameters and the
required ones are given, an enum value (an icon) is one of its items, a property drawn exists on its data, an
operator exists and every property set on it is one of the operator's. Prints one JSON line (``RESULT {...}``):
the text drawn in each state and every call this Blender would refuse.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import bpy

MODULE = "bl_ext.user_default.framehive"


class Checked:
    """Stands in for a bpy.types.UILayout; keeps what is drawn and each call this Blender would refuse."""

    def __init__(self, drawn: list[str], refused: list[str]) -> None:
        self._drawn, self._refused = drawn, refused

    def __getattr__(self, name: str) -> Any:
        function = bpy.types.UILayout.bl_rna.functions.get(name)
        if function is None:
            self._refused.append(f"UILayout.{name}: no such function")
            return lambda *args, **kwargs: Checked(self._drawn, self._refused)
        inputs = {p.identifier: p for p in function.parameters if not p.is_output}
        returns_layout = any(p.is_output and p.identifier == "layout" for p in function.parameters)

        def call(*args: Any, **kwargs: Any) -> Any:
            given = dict(zip(inputs, args, strict=False)) | kwargs
            for key, value in given.items():
                parameter = inputs.get(key)
                if parameter is None:
                    self._refused.append(f"UILayout.{name}: no parameter {key}")
                elif parameter.type == "ENUM" and not parameter.is_enum_flag and value not in {
                        item.identifier for item in parameter.enum_items}:
                    self._refused.append(f"UILayout.{name}: {key}={value!r} is none of its items")
            missing = [key for key, parameter in inputs.items() if parameter.is_required and key not in given]
            if missing:
                self._refused.append(f"UILayout.{name}: {missing} missing")
            self._drawn.append(f"{name}: {given.get('text', '')}")
            if name == "prop":
                data = getattr(given.get("data"), "wrapped", given.get("data"))
                if given.get("property") not in data.bl_rna.properties:
                    self._refused.append(f"UILayout.prop: {type(data).__name__} has no {given.get('property')}")
                self._drawn[-1] = f"prop: {given.get('property')}"
            if name == "operator":
                self._drawn[-1] = f"operator: {given.get('operator')}"
                return OperatorProperties(str(given.get("operator")), self._refused)
            return Checked(self._drawn, self._refused) if returns_layout else None

        return call


class OperatorProperties:
    """What ``layout.operator()`` returns: the properties a button passes to its operator."""

    def __init__(self, idname: str, refused: list[str]) -> None:
        module, _, name = idname.partition(".")
        try:
            properties = getattr(getattr(bpy.ops, module), name).get_rna_type().properties
            names = {p.identifier for p in properties}
        except (AttributeError, KeyError):
            refused.append(f"operator {idname}: not registered")
            names = set()
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_refused", refused)
        object.__setattr__(self, "_idname", idname)

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in self._names:  # type: ignore[attr-defined]
            self._refused.append(f"operator {self._idname}: no property {key}")  # type: ignore[attr-defined]


class Drawn:
    """The ``self`` of a draw method: ``layout`` is the checked one, anything else is the wrapped object's."""

    def __init__(self, wrapped: Any, layout: Checked, **values: Any) -> None:
        self.wrapped, self.layout, self.values = wrapped, layout, values

    def __getattr__(self, name: str) -> Any:
        return self.values[name] if name in self.values else getattr(self.wrapped, name)


def draw(function: Any, wrapped: Any, refused: list[str], **values: Any) -> list[str]:
    drawn: list[str] = []
    function(Drawn(wrapped, Checked(drawn, refused), **values), bpy.context)
    return drawn


def status(job_watch: Any, **values: Any) -> Any:
    """A JobStatus with these values, the other fields at zero or empty."""
    zero = {"job_id": 7, "state": "running", "total": 0, "verified": 0, "rendered": 0, "failed": 0, "downloaded": 0,
            "eta_seconds": None, "output_dir": ""}
    names = {field.name for field in dataclasses.fields(job_watch.JobStatus)}
    return job_watch.JobStatus(**{key: value for key, value in (zero | values).items() if key in names})


def main(zip_path: str) -> None:
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    panel, operators = sys.modules[f"{MODULE}.panel"], sys.modules[f"{MODULE}.operators"]
    session, job_watch = sys.modules[f"{MODULE}.session"], sys.modules[f"{MODULE}.job_watch"]
    live, settings, refused = session.get(), bpy.context.scene.framehive, []
    seen: dict[str, Any] = {"blender": bpy.app.version_string}
    paint = panel.FRAMEHIVE_PT_render.draw

    seen["panel"] = draw(paint, panel.FRAMEHIVE_PT_render, refused)
    live.account.price_per_frame, live.account.balance = 2, 3
    live.submission, live.submission_fraction, live.submission_text = object(), 0.5, "uploading shot.blend"
    seen["panel_submitting"] = draw(paint, panel.FRAMEHIVE_PT_render, refused)
    live.submission, live.account.price_per_frame, live.account.error = None, None, "token refused"
    settings.job_id = 7
    seen["panel_news_awaited"] = draw(paint, panel.FRAMEHIVE_PT_render, refused)
    live.statuses[7] = status(job_watch, state="running", total=240, verified=100, rendered=20, failed=1,
                              downloaded=90, eta_seconds=3700.0, output_dir="/tmp/frames", error="coordinator busy",
                              open_claims=2, waiting="frames 1-240 wait for a verifier " * 4, unverified=3)
    seen["panel_running"] = draw(paint, panel.FRAMEHIVE_PT_render, refused)
    live.statuses[7] = status(job_watch, state="completed", total=240, verified=240, downloaded=240,
                              output_dir="/tmp/frames")
    seen["panel_completed"] = draw(paint, panel.FRAMEHIVE_PT_render, refused)

    prefs = bpy.context.preferences.addons[MODULE].preferences
    bpy.context.preferences.system.use_online_access = False
    prefs.last_check, prefs.download = "connected", "FOLDER"
    seen["preferences"] = draw(type(prefs).draw, prefs, refused)
    seen["confirm_files"] = draw(operators.FRAMEHIVE_OT_confirm_files.draw, operators.FRAMEHIVE_OT_confirm_files,
                                 refused, outside="/home/a/x.png\n/home/a/y.png", missing="//gone.png")
    seen["refused"] = refused
    print("RESULT " + json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1])
