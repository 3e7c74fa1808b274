"""Framehive's render runner: a warm Blender process that opens scenes and renders frames on request.

This file runs *inside* Blender, either as a script (``blender -b -Y --factory-startup --python
render_runner.py --``) or under a Python that has the ``bpy`` module (``python -P render_runner.py``). So it is
self-contained: the standard library and ``bpy`` only, nothing else from Framehive.

Protocol. Commands arrive on stdin as JSON objects, one per line; each command gets exactly one event back.
Events go to a private protocol stream (the original stdout) as lines ``@@FH {json}``. Everything Blender and
Python print is diverted to stderr, so the protocol stream carries nothing else in the module case; with a
``blender`` binary a few lines may precede our script, so readers must ignore lines without the marker.

    start [--threads N]                    -> {"event": "ready", "blender_version", "devices": [...]}
    {"cmd": "open", "path", "device", "threads", "settings"}
                                           -> {"event": "opened", "scene", "engine", "frame_start",
                                               "frame_end", "resolution", "device", "autoexec_blocked",
                                               "muted_outputs", "disabled", "denoised"}
    {"cmd": "render", "frame", "output"}   -> {"event": "rendered", "frame", "path", "seconds"}
    {"cmd": "render_region", "frame", "rect": [x, y, w, h], "output", "overrides"}
                                           -> {"event": "rendered_region", "frame", "rect", "resolution",
                                               "path", "seconds"}
    {"cmd": "quit"}                        -> {"event": "bye"}, then exit 0 (EOF on stdin: exit 0 too)
    any failure                            -> {"event": "error", "message", "command"}; the runner goes on

Cycles' render status ("Sample 3/128") is copied to stderr as ``framehive: ...`` lines, and the runner exits
by itself within a second if the process that started it dies (it runs in its own session).

Safety. Scenes come from strangers. They are opened with scripts disabled, which blocks registered text
blocks, the handlers they would register and Python drivers; but Freestyle runs Python style modules at
render time even then, so Freestyle is forced off on every scene and view layer. A scene can also make
Blender itself write files outside the frame's output path (compositor File Output nodes, multiview file
suffixes, disk point caches), so those are switched off too: see ``_force_safety``. None of this is a
sandbox, and some of it cannot be done from here: a fluid simulation writes its cache during the open itself,
before any of this can run, and image textures may name any file on the disk. The agent therefore starts this
runner confined by the OS (worker_agent/confinement.py: on Linux, Landlock lets it read only the scene's tree
and the software and write only its private output and temp folders) with a scrubbed environment, under
memory, time and file size limits (worker_agent/render_limits.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from typing import Any

MARKER = "@@FH "

# Engines we know how to drive headless; anything else is an add-on engine that a worker will not have.
SUPPORTED_ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH")  # _NEXT: 4.2-4.5
GPU_BACKENDS = ("CUDA", "OPTIX", "HIP", "METAL", "ONEAPI")
DEVICES = ("CPU", *GPU_BACKENDS)
# How often the runner checks that the agent that started it is still alive. The agent starts it in its own
# session (so Ctrl-C does not kill a frame half done), so without this an orphan could render for hours.
PARENT_POLL_INTERVAL = 1.0
ORPHAN_EXIT_CODE = 3

bpy: Any = None  # imported by main() only after the protocol stream is claimed (see _claim_protocol_stream)


class CommandError(Exception):
    """A command that cannot be carried out; its message goes back to the parent as is."""


# ---------------------------------------------------------------------------------------------- streams


def _claim_protocol_stream():
    """Keep the real stdout for the protocol and point fd 1 (and ``sys.stdout``) at stderr.

    Blender's C code prints to fd 1 (render progress, "Saved:" lines, warnings); after the swap all of that
    lands on stderr, which the parent only keeps as a log.
    """
    sys.stdout.flush()
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _emit(proto, event: dict[str, Any]) -> None:
    proto.write(MARKER + json.dumps(event) + "\n")
    proto.flush()


def _log_render_stats(stats: str, *_args: Any) -> None:
    """Copy Cycles' status ("Sample 12/128", "Finished") to stderr, the log the parent keeps.

    In background mode Blender 5.0 prints no per-frame progress by itself, so without this the log tail of a
    failed or killed render would say nothing about how far it got.
    """
    print(f"framehive: {stats}", file=sys.stderr, flush=True)


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_INTERVAL)
        _unpin_threads()  # pool threads a long render started get every CPU within a second (see _import_bpy)
        if os.getppid() != parent:
            print("framehive: the agent is gone, exiting", file=sys.stderr, flush=True)
            os._exit(ORPHAN_EXIT_CODE)  # mid-render the main thread is inside Blender; only _exit stops it


def _install_hooks() -> None:
    """Runner-wide hooks; ``persistent`` keeps the handler across open_mainfile, which clears the others."""
    bpy.app.handlers.render_stats.append(bpy.app.handlers.persistent(_log_render_stats))
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()


# ---------------------------------------------------------------------------------------------- devices


def _cycles_prefs():
    return bpy.context.preferences.addons["cycles"].preferences


def _compiled_backends(prefs) -> list[str]:
    """GPU backends this Blender build was compiled with (the items of ``compute_device_type``)."""
    try:
        items = prefs.get_device_types(bpy.context)
    except Exception:  # an older or trimmed build: just try them all, unknown ones fail individually
        return list(GPU_BACKENDS)
    return [item[0] for item in items if item[0] in GPU_BACKENDS]


def enumerate_devices() -> list[dict[str, str]]:
    """Every GPU Cycles can use (with its backend), then the CPU once."""
    prefs = _cycles_prefs()
    # One refresh first: later get_devices_for_type calls then find every entry already present and do not
    # reallocate ``prefs.devices`` under us (see Cycles' own comment on refresh_devices).
    prefs.refresh_devices()
    gpus: list[dict[str, str]] = []
    cpu: dict[str, str] | None = None
    for backend in _compiled_backends(prefs) + ["CPU"]:
        try:
            entries = prefs.get_devices_for_type(backend)
        except Exception as exc:  # driver missing or broken: this backend simply is not there
            print(f"framehive: no {backend} devices ({exc})", file=sys.stderr)
            continue
        for entry in entries:
            info = {"backend": entry.type, "name": entry.name, "id": entry.id}
            if entry.type == backend and backend != "CPU":
                gpus.append(info)
            elif entry.type == "CPU" and cpu is None:
                cpu = info
    return gpus + [cpu or {"backend": "CPU", "name": "CPU", "id": "CPU"}]


def _configure_device(scene, device: str) -> str:
    """Render ``scene`` on ``device`` (CPU or one GPU backend, using every device of that backend)."""
    device = str(device).upper()
    if device not in DEVICES:
        raise CommandError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if device == "CPU":
        scene.cycles.device = "CPU"
        return device
    prefs = _cycles_prefs()
    if device not in _compiled_backends(prefs):
        raise CommandError(f"this Blender build has no {device} support")
    prefs.compute_device_type = device
    prefs.refresh_devices()
    used = 0
    for entry in prefs.devices:
        entry.use = entry.type == device  # only this backend: no CPU+GPU mix, keeps results per device class
        used += entry.use
    if not used:
        raise CommandError(f"no {device} device found")
    scene.cycles.device = "GPU"
    return device


# ---------------------------------------------------------------------------------------------- settings


def _is_int(value: Any) -> bool:
    """A JSON integer (a bool is an int to Python, never to us). protocol/json_numbers.is_int's rule, repeated here
    because this file runs inside Blender without Framehive (see the module's docstring)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any) -> int:
    if not _is_int(value):
        raise CommandError(f"expected an integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError(f"expected a number, got {value!r}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CommandError(f"expected true or false, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise CommandError(f"expected a string, got {value!r}")
    return value


# The whitelist of job settings a coordinator may impose on a scene: name -> (validator, owner, attribute).
# Owner "cycles" means Cycles only; "samples" maps to the engine's own sample count. frame_start comes before
# frame_end on purpose: Blender pushes frame_end up when frame_start passes it, never the other way round.
SETTINGS: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    "samples": (_int, "engine", "samples"),
    "seed": (_int, "cycles", "seed"),
    "use_animated_seed": (_bool, "cycles", "use_animated_seed"),
    "pixel_filter_type": (_str, "cycles", "pixel_filter_type"),
    "filter_width": (_float, "cycles", "filter_width"),
    "use_denoising": (_bool, "cycles", "use_denoising"),
    "dither_intensity": (_float, "render", "dither_intensity"),
    "resolution_x": (_int, "render", "resolution_x"),
    "resolution_y": (_int, "render", "resolution_y"),
    "resolution_percentage": (_int, "render", "resolution_percentage"),
    "frame_start": (_int, "scene", "frame_start"),
    "frame_end": (_int, "scene", "frame_end"),
}


def _check_settings(settings: Any) -> dict[str, Any]:
    """Validate names and types before the scene is touched, so a bad request changes nothing."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise CommandError("settings must be an object")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise CommandError(f"unknown settings: {', '.join(unknown)}; allowed: {', '.join(SETTINGS)}")
    checked = {}
    for name in SETTINGS:  # in table order, which is the order they are applied in
        if name in settings:
            try:
                checked[name] = SETTINGS[name][0](settings[name])
            except CommandError as exc:
                raise CommandError(f"setting {name}: {exc}") from None
    if checked.get("frame_start", -(2**31)) > checked.get("frame_end", 2**31):
        raise CommandError(f"frame_start {checked['frame_start']} is after frame_end {checked['frame_end']}")
    return checked


def _setting_target(scene, name: str) -> tuple[Any, str]:
    """The RNA struct and attribute that setting ``name`` lives on, for this scene's engine."""
    _validator, owner, attribute = SETTINGS[name]
    engine = scene.render.engine
    if owner == "engine":
        if engine == "CYCLES":
            return scene.cycles, "samples"
        if engine.startswith("BLENDER_EEVEE"):
            return scene.eevee, "taa_render_samples"
        raise CommandError(f"has no meaning for {engine}")
    if owner == "cycles":
        if engine != "CYCLES":
            raise CommandError(f"applies to Cycles only, the scene uses {engine}")
        return scene.cycles, attribute
    return (scene.render if owner == "render" else scene), attribute


def _apply_settings(scene, settings: dict[str, Any]) -> None:
    """Set each value, then read it back: Blender silently clamps out-of-range values, we refuse them."""
    for name, value in settings.items():
        try:
            target, attribute = _setting_target(scene, name)
            setattr(target, attribute, value)
            stored = getattr(target, attribute)
        except (TypeError, ValueError, AttributeError) as exc:  # e.g. an enum item Blender does not know
            raise CommandError(f"setting {name}: {exc}") from None
        except CommandError as exc:
            raise CommandError(f"setting {name}: {exc}") from None
        if not _same_value(stored, value):
            raise CommandError(f"setting {name}: Blender accepts {stored!r}, not {value!r}")


def _same_value(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, float):
        return abs(stored - wanted) <= 1e-6 * max(1.0, abs(wanted))  # RNA floats are 32-bit
    return stored == wanted


# ---------------------------------------------------------------------------------------------- scene


# What else a .blend can write during ``frame_set`` + ``render.render(write_still=True)`` with scripts off,
# measured on bpy 5.0.1 (tests/scenes/hostile.py carries the first four as vectors, with positive controls):
#
# - compositor File Output nodes, also inside node groups: write anywhere         -> muted, see _mute_file_outputs
# - multiview with individual view files: the view's file suffix is inserted into the output path and ``..``
#   in it is honoured, so a view lands anywhere (up to 63 bytes of suffix)            -> multiview off
# - point caches (cloth, soft body, particles, dynamic paint, rigid body) with a disk cache: an external cache
#   writes ``<name>_<frame>_<index>.bphys`` into any directory on frame changes, an internal one into
#   ``//blendcache_<file>/`` next to the .blend                                       -> memory cache instead
# - OSL script nodes in external mode: Cycles compiles ``x.osl`` into ``x.oso`` next to it, at any path where
#   a .osl already exists (internal OSL bytecode's ``fprintf`` wrote nothing)          -> OSL off (SVM); this
#   changes the picture of OSL scenes, which GPU workers other than OptiX could not render alike anyway
# - fluid (Mantaflow) domains write ``config/config_0001.uni`` into their cache directory, which may be
#   absolute, already during ``open_mainfile`` (and editing a domain's cache settings deleted the ``config/``
#   and ``data/`` folders there); the bpy 5.0.1 wheel then aborts the process while simulating. NOT handled
#   here: it happens before we get control; the runner's confinement stops it (tests/worker/test_confinement.py
#   renders tests/scenes/peeking.py's fluid domain and finds nothing written).
# Checked and harmless: geometry-nodes simulation/bake zones with a disk bake path (nothing is written
# without the bake operator); a File Output node's ``mute`` cannot be keyframed, so muting sticks. Not
# measured, believed harmless: render stamp (burnt into the pixels), the sequencer (proxies and its disk cache
# come from operators and user preferences), dynamic paint image sequences and ocean bakes (operators only).
# Reading is a separate matter: image textures and strips may point at any file on the worker's disk; the
# confinement limits reads to the scene's tree and the software.


def _force_safety(scenes) -> tuple[list[str], list[str]]:
    """Make ``scenes`` (all of the file's scenes) safe to render; returns (muted File Outputs, disabled)."""
    disabled: list[str] = []
    for scene in scenes:
        scene.render.use_freestyle = False  # its Python style modules run even with scripts off
        for view_layer in scene.view_layers:
            view_layer.use_freestyle = False
        if scene.render.use_multiview:
            scene.render.use_multiview = False
            disabled.append(f"{scene.name}: multiview")
        cycles = getattr(scene, "cycles", None)
        if cycles is not None and cycles.shading_system:
            cycles.shading_system = False
            disabled.append(f"{scene.name}: OSL")
    disabled.extend(_use_memory_point_caches())
    return _mute_file_outputs(scenes), disabled


def _mute_file_outputs(scenes) -> list[str]:
    """Mute every compositor File Output node; returns their paths ("Scene/tree/group node/.../node").

    Muting (rather than removing anything) leaves the artist's compositing and the main image as designed and
    only drops the side outputs. Walks each scene's compositor and the node groups it uses, recursively and
    each tree once (groups may be shared, or nest in a cycle); then any compositor tree not reached that way
    (unused, or used from elsewhere), so that no File Output node in the file stays live.
    """
    muted: list[str] = []
    seen: set[int] = set()

    def walk(tree, path: str) -> None:
        if tree is None or tree.as_pointer() in seen:
            return
        seen.add(tree.as_pointer())
        for node in tree.nodes:
            if node.type == "OUTPUT_FILE":
                node.mute = True
                if not node.mute:
                    raise CommandError(f"cannot mute the File Output node {path}/{node.name}")
                muted.append(f"{path}/{node.name}")
            walk(getattr(node, "node_tree", None), f"{path}/{node.name}")  # group nodes

    for scene in scenes:
        tree = getattr(scene, "compositing_node_group", None) or getattr(scene, "node_tree", None)  # 5.0 / 4.x
        if tree is not None:
            walk(tree, f"{scene.name}/{tree.name}")
    for tree in bpy.data.node_groups:
        if tree.bl_idname == "CompositorNodeTree":
            walk(tree, f"node_groups/{tree.name}")
    return muted


def _point_caches():
    """(owner, cache) for every point cache in the file, including each owner's alternative caches."""
    owners = []
    for obj in bpy.data.objects:
        for modifier in obj.modifiers:
            owners.append((f"{obj.name}/{modifier.name}", getattr(modifier, "point_cache", None)))  # cloth, soft body
            canvas = getattr(modifier, "canvas_settings", None)  # dynamic paint
            for surface in canvas.canvas_surfaces if canvas is not None else ():
                owners.append((f"{obj.name}/{modifier.name}/{surface.name}", surface.point_cache))
        for system in obj.particle_systems:
            owners.append((f"{obj.name}/{system.name}", system.point_cache))
    for scene in bpy.data.scenes:
        world = scene.rigidbody_world
        owners.append((f"{scene.name}/rigid body world", world.point_cache if world is not None else None))
    for owner, cache in owners:
        for alternative in cache.point_caches if cache is not None else ():
            yield owner, alternative


def _use_memory_point_caches() -> list[str]:
    """Keep every point cache in memory; returns the owners of those that were on disk."""
    changed = []
    for owner, cache in _point_caches():
        if not (cache.use_external or cache.use_disk_cache):
            continue
        # External first: switching the disk cache off while it is still external clears the cache, which
        # deletes the matching .bphys files in the external directory (measured).
        cache.use_external = False
        cache.use_disk_cache = False
        changed.append(f"{owner}: disk cache {cache.name or '(unnamed)'}")
    return changed


def _configure_output(scene) -> None:
    """8-bit PNG, one exact file per frame: the format verification compares."""
    render = scene.render
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # 5.0+: the PNG item only exists for still-image media
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGBA" if render.film_transparent else "RGB"
    settings.color_depth = "8"
    render.use_file_extension = False
    render.use_overwrite = True
    render.use_placeholder = False


def _configure_threads(scene, threads: Any) -> None:
    if threads is None:
        scene.render.threads_mode = "AUTO"  # the worker decides, not whatever the artist's machine had
        return
    try:
        count = _int(threads)
    except CommandError as exc:
        raise CommandError(f"threads: {exc}") from None
    if count < 1:
        raise CommandError(f"threads must be at least 1, got {count}")
    scene.render.threads_mode = "FIXED"
    scene.render.threads = count


def _autoexec_blocked() -> bool:
    """Whether the file tried to run Python that scripts-off mode refused (drivers, registered texts)."""
    skipped_texts = any(text.use_module for text in bpy.data.texts)
    return bool(bpy.app.autoexec_fail) or skipped_texts


def _denoised(scene) -> bool:
    """Whether a region render differs a little from the full frame because Cycles' denoiser (OIDN) sees only the
    region: the verifier then renders a yardstick. Not for a scene the compositor denoises: its regions are
    rendered whole and cropped (:func:`_renders_regions_whole`), so they are the full frame's pixels."""
    return scene.render.engine == "CYCLES" and bool(scene.cycles.use_denoising) and not _renders_regions_whole(scene)


def _renders_regions_whole(scene) -> bool:
    """Whether region renders of ``scene`` must render the whole frame and crop it: its compositor has a node whose
    output at a pixel depends on more than that pixel (a neighbourhood, the image's size or position, statistics of
    the whole image, another image). Given a region alone (border + crop), such a node changes the region's pixels,
    not only near its edge: a Denoise node by up to 32 levels 30 px inside at 192x108, so no margin helps
    (tests/worker/test_compositor_denoise.py); Glare, Blur, Lens Distortion, Levels or a Box Mask alike. Only nodes
    that map each pixel on its own (:data:`PER_PIXEL_NODES`) leave region renders as they are; an unknown node, a
    custom group, or a node left unconnected counts as not per-pixel (a whole-frame render costs time, never a
    wrong verdict)."""
    return bool(scene.render.use_compositing) and _needs_whole_frame(_compositor_tree(scene), set())


# Compositor nodes whose output at a pixel depends only on that pixel of their inputs (and on constants): a region
# rendered alone comes out of them as it would in the whole frame. Everything else makes region renders whole.
PER_PIXEL_NODES = frozenset({
    "CompositorNodeRLayers", "CompositorNodeViewer", "CompositorNodeOutputFile", "CompositorNodeComposite",
    "CompositorNodeAlphaOver", "CompositorNodeBrightContrast", "CompositorNodeChannelMatte",
    "CompositorNodeChromaMatte", "CompositorNodeColorBalance", "CompositorNodeColorCorrection",
    "CompositorNodeColorMatte", "CompositorNodeColorSpill", "CompositorNodeCombineColor",
    "CompositorNodeConvertColorSpace", "CompositorNodeConvertToDisplay", "CompositorNodeCurveRGB",
    "CompositorNodeDiffMatte", "CompositorNodeDistanceMatte", "CompositorNodeExposure", "CompositorNodeGamma",
    "CompositorNodeHueCorrect", "CompositorNodeHueSat", "CompositorNodeInvert", "CompositorNodeLumaMatte",
    "CompositorNodeNormal", "CompositorNodePosterize", "CompositorNodePremulKey", "CompositorNodeRGB",
    "CompositorNodeRGBToBW", "CompositorNodeSeparateColor", "CompositorNodeSetAlpha", "CompositorNodeSwitch",
    "CompositorNodeSwitchView", "CompositorNodeTime", "CompositorNodeSceneTime", "CompositorNodeCryptomatteV2",
    "CompositorNodeMixRGB", "CompositorNodeMath", "CompositorNodeValToRGB", "CompositorNodeValue",
    "ShaderNodeMix", "ShaderNodeMixRGB", "ShaderNodeMath", "ShaderNodeMapRange", "ShaderNodeClamp",
    "ShaderNodeValToRGB", "ShaderNodeRGBCurve", "ShaderNodeVectorMath", "ShaderNodeSeparateXYZ",
    "ShaderNodeCombineXYZ", "ShaderNodeVectorCurve", "ShaderNodeFloatCurve", "ShaderNodeValue",
    "ShaderNodeBlackbody", "ShaderNodeGamma", "ShaderNodeRGBToBW",
    "NodeReroute", "NodeFrame", "NodeGroupInput", "NodeGroupOutput",
})
GROUP_NODES = frozenset({"CompositorNodeGroup"})  # looked into: per-pixel if everything inside is


def _compositor_tree(scene):
    """The scene's compositing node tree: Blender 5's ``compositing_node_group``, or 4.x's ``node_tree`` in use."""
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def _needs_whole_frame(tree, seen: set[str]) -> bool:
    """Whether ``tree`` or a node group inside it has an unmuted node that is not per-pixel (groups recursively)."""
    if tree is None or tree.name in seen:
        return False
    seen.add(tree.name)
    for node in tree.nodes:
        if node.mute:
            continue
        if node.bl_idname in GROUP_NODES:
            if _needs_whole_frame(getattr(node, "node_tree", None), seen):
                return True
        elif node.bl_idname not in PER_PIXEL_NODES:
            return True
    return False


def _effective_resolution(scene) -> list[int]:
    render = scene.render
    return [render.resolution_x * render.resolution_percentage // 100,
            render.resolution_y * render.resolution_percentage // 100]


# ---------------------------------------------------------------------------------------------- regions

# Settings a verifier may change for one region render (tier-1 low-resolution checks, ringers); the rest of
# the job's settings stay as the open imposed them.
REGION_OVERRIDES = ("resolution_x", "resolution_y", "resolution_percentage", "samples", "pixel_filter_type",
                    "use_denoising", "seed")
BORDER_ATTRIBUTES = ("use_border", "use_crop_to_border", "border_min_x", "border_max_x", "border_min_y",
                     "border_max_y")


def _check_overrides(overrides: Any) -> dict[str, Any]:
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise CommandError("overrides must be an object")
    unknown = sorted(set(overrides) - set(REGION_OVERRIDES))
    if unknown:
        raise CommandError(f"unknown overrides: {', '.join(unknown)}; allowed: {', '.join(REGION_OVERRIDES)}")
    try:
        checked = _check_settings(overrides)
    except CommandError as exc:
        raise CommandError(f"overrides: {exc}") from None
    for name, least in (("resolution_percentage", 1), ("resolution_x", 4), ("resolution_y", 4)):  # Blender's minima
        if checked.get(name, least) < least:
            raise CommandError(f"overrides: {name} must be at least {least}, got {checked[name]}")
    return checked


def _check_rect(rect: Any, width: int, height: int) -> tuple[int, int, int, int]:
    """``rect`` as (x, y, w, h) pixels, top-left origin, inside a ``width`` x ``height`` image; else refuse."""
    if (not isinstance(rect, list) or len(rect) != 4
            or not all(_is_int(v) for v in rect)):
        raise CommandError(f"rect must be 4 integers [x, y, w, h] in pixels, got {rect!r}")
    x, y, w, h = rect
    if w < 1 or h < 1:
        raise CommandError(f"rect {rect} is empty: width and height must be at least 1 pixel")
    if x < 0 or y < 0:
        raise CommandError(f"rect {rect} starts outside the image: x and y must not be negative")
    if x + w > width or y + h > height:
        raise CommandError(f"rect {rect} reaches outside the {width}x{height} image "
                           f"(x + w = {x + w}, y + h = {y + h})")
    return x, y, w, h


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _border_edge(pixel: int, size: int) -> float:
    """The normalised border value that makes Blender start (or end) a border at pixel boundary ``pixel``.

    Blender turns a border value ``b`` (a 32-bit float) into a pixel boundary as ``int(b * size)`` in 32-bit
    float arithmetic, truncating: the render pipeline (``render_init_from_main``) and Cycles
    (``get_buffer_params``) both do. ``pixel / size`` is therefore wrong about a quarter of the time (the
    product lands just below ``pixel`` and truncates to ``pixel - 1``); aiming at the middle of the pixel,
    ``(pixel + 0.5) / size``, truncates to ``pixel`` for every image narrower than about 8 million pixels.
    The far edge of the image is 1.0 exactly.
    """
    if pixel >= size:
        return 1.0
    return (pixel + 0.5) / size


def _border_pixel(value: float, size: int) -> int:
    """What Blender makes of border ``value`` (as stored, a 32-bit float) on an axis of ``size`` pixels."""
    return int(_float32(_float32(value) * float(size)))  # float32 * float32 product, truncated like C does


def _border_for(rect: tuple[int, int, int, int], width: int, height: int) -> dict[str, float]:
    """Border values for ``rect`` (top-left origin); Blender's border has its origin at the bottom left."""
    x, y, w, h = rect
    edges = {"border_min_x": (x, width), "border_max_x": (x + w, width),
             "border_min_y": (height - (y + h), height), "border_max_y": (height - y, height)}
    border = {}
    for name, (pixel, size) in edges.items():
        value = _border_edge(pixel, size)
        if _border_pixel(value, size) != pixel:  # only for images millions of pixels across
            raise CommandError(f"rect {list(rect)}: Blender's 32-bit render border cannot start or end exactly "
                               f"at pixel {pixel} of {size}; choose another rectangle")
        border[name] = value
    return border


def _paeth(left: int, up: int, corner: int) -> int:
    estimate = left + up - corner
    to_left, to_up, to_corner = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    return up if to_up <= to_corner else corner


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> list[bytes]:
    """A non-interlaced PNG's image data as its rows of pixel bytes, every filter undone."""
    rows, previous = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + previous[i]) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + previous[i]) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
            elif kind != 0:
                raise CommandError(f"Blender wrote a PNG with an unknown filter {kind}")
        previous = bytes(line)
        rows.append(previous)
    return rows


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _crop_png(path: str, rect: tuple[int, int, int, int]) -> None:
    """Cut ``rect`` (x, y, w, h, top-left origin) out of the 8-bit PNG Blender wrote at ``path``, in place: the
    very pixel bytes, written again unfiltered; the other chunks (colour space, metadata) are kept."""
    with open(path, "rb") as handle:
        data = handle.read()
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    header = chunks[0][1]
    width, height, depth, colour, interlace = *struct.unpack(">II", header[:8]), header[8], header[9], header[12]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if chunks[0][0] != b"IHDR" or depth != 8 or channels is None or interlace:
        raise CommandError("Blender wrote a PNG that is not 8-bit, non-interlaced grey, RGB or RGBA")
    rows = _unfilter(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")), height,
                     width * channels, channels)
    x, y, w, h = rect
    cropped = b"".join(b"\x00" + row[x * channels:(x + w) * channels] for row in rows[y:y + h])
    out, idat_written = [data[:8]], False
    for kind, body in chunks:
        if kind == b"IHDR":
            body = struct.pack(">II", w, h) + body[8:]
        elif kind == b"IDAT":
            if idat_written:
                continue
            body, idat_written = zlib.compress(cropped), True
        out.append(_png_chunk(kind, body))
    with open(path, "wb") as handle:
        handle.write(b"".join(out))


def _png_size(path: str) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise CommandError("Blender wrote something that is not a PNG")
    return struct.unpack(">II", head[16:24])


def _escape_path_template(path: str) -> str:
    """Blender 5.0 expands ``{name}`` templates in output paths; ``{{``/``}}`` are literal braces."""
    if bpy.app.version >= (5, 0, 0):
        return path.replace("{", "{{").replace("}", "}}")
    return path


def _check_output(output: Any) -> str:
    output = _str(output)
    if not os.path.isabs(output):
        raise CommandError(f"output must be an absolute path: {output!r}")
    directory = os.path.dirname(output)
    if not os.path.isdir(directory):
        raise CommandError(f"output directory does not exist: {directory}")
    return output


def _render_still(scene, frame: int, output: str, expected_size: tuple[int, int] | None = None,
                  crop: tuple[int, int, int, int] | None = None) -> None:
    """Render ``frame`` to exactly ``output``, atomically; with ``crop``, only that rectangle of what Blender
    wrote; with ``expected_size``, refuse any other size."""
    # Render to a hidden name next to the target, then rename: the uploader never sees half a PNG, and
    # Blender's own path rules (frame-number '#' in the file name, extensions) cannot touch ``output``.
    partial = os.path.join(os.path.dirname(output), f".framehive-{os.getpid()}-partial.png")
    try:
        scene.frame_set(frame)
        scene.render.filepath = _escape_path_template(partial)
        bpy.ops.render.render(write_still=True, scene=scene.name)
        if not os.path.isfile(partial):
            raise CommandError("Blender finished without writing the frame (see the log)")
        if crop is not None:
            _crop_png(partial, crop)
        if expected_size is not None and _png_size(partial) != expected_size:
            raise CommandError(f"Blender rendered {_png_size(partial)} pixels instead of {expected_size}")
        os.replace(partial, output)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


# ---------------------------------------------------------------------------------------------- runner


class Runner:
    """Carries out commands against the one scene this process has open."""

    def __init__(self) -> None:
        self.scene_name: str | None = None
        self.commands: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "open": self.open,
            "render": self.render,
            "render_region": self.render_region,
            "quit": self.quit,
        }

    def ready(self) -> dict[str, Any]:
        """The greeting: what this Blender is and which devices it can render on."""
        return {"event": "ready", "blender_version": bpy.app.version_string, "devices": enumerate_devices()}

    def dispatch(self, line: str) -> dict[str, Any]:
        """Run one command line and return its event; failures become error events."""
        name = None
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise CommandError("a command must be a JSON object")
            name = message.get("cmd")
            handler = self.commands.get(name) if isinstance(name, str) else None
            if handler is None:
                raise CommandError(f"unknown command {name!r}; known: {', '.join(self.commands)}")
            return handler(message)
        except Exception as exc:
            if not isinstance(exc, CommandError):
                traceback.print_exc()  # into the log the parent keeps
            message_text = str(exc) if isinstance(exc, CommandError) else f"{type(exc).__name__}: {exc}"
            return {"event": "error", "message": message_text, "command": name}

    @property
    def scene(self):
        if self.scene_name is None or self.scene_name not in bpy.data.scenes:
            raise CommandError("no scene is open")
        return bpy.data.scenes[self.scene_name]

    def open(self, message: dict[str, Any]) -> dict[str, Any]:
        """Open a .blend with scripts off, make it safe, apply the job's settings, choose the device."""
        path = _str(message.get("path"))
        if not os.path.isabs(path):
            raise CommandError(f"path must be absolute: {path!r}")
        if not os.path.isfile(path):
            raise CommandError(f"no such file: {path}")
        settings = _check_settings(message.get("settings"))
        self.scene_name = None
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=False)
        muted_outputs, disabled = _force_safety(bpy.data.scenes)
        scene = bpy.context.scene
        if scene.render.engine not in SUPPORTED_ENGINES:
            raise CommandError(f"unsupported render engine {scene.render.engine}")
        _apply_settings(scene, settings)
        _configure_output(scene)
        _configure_threads(scene, message.get("threads"))
        device = _configure_device(scene, message.get("device") or "CPU")
        self.scene_name = scene.name
        return {
            "event": "opened",
            "scene": scene.name,
            "engine": scene.render.engine,
            "frame_start": scene.frame_start,
            "frame_end": scene.frame_end,
            "resolution": _effective_resolution(scene),
            "device": device,
            "autoexec_blocked": _autoexec_blocked(),
            "muted_outputs": muted_outputs,
            "disabled": disabled,
            "denoised": _denoised(scene),
        }

    def render(self, message: dict[str, Any]) -> dict[str, Any]:
        """Render one frame of the open scene to exactly ``output`` (written atomically)."""
        scene = self.scene
        frame = _int(message.get("frame"))
        output = _check_output(message.get("output"))
        started = time.monotonic()
        _render_still(scene, frame, output)
        return {"event": "rendered", "frame": frame, "path": output, "seconds": time.monotonic() - started}

    def render_region(self, message: dict[str, Any]) -> dict[str, Any]:
        """Render only ``rect`` of a frame (verification): the same pixels as that part of a full render.

        ``rect`` is ``[x, y, w, h]`` in pixels of the output resolution (after resolution_percentage, and after
        an overridden one), origin at the top left of the PNG. The file is exactly w x h pixels, equal to
        ``full[y:y+h, x:x+w]`` of the full frame rendered with the same settings: bit for bit with Cycles when
        dither_intensity is 0 and no denoiser runs (OIDN sees the crop edge: ask for a margin of 16 px and
        compare the inside). A scene whose compositor has a node that is not per-pixel (Denoise, Glare, Blur,
        Lens Distortion, transforms, masks, Levels...: :func:`_renders_regions_whole`) is rendered whole and
        cropped, so its regions cost a whole frame; burnt-in stamps and a scene's own render border are refused.
        ``overrides`` change REGION_OVERRIDES for this render only; they and the border settings are restored
        afterwards.
        """
        scene = self.scene
        frame = _int(message.get("frame"))
        output = _check_output(message.get("output"))
        overrides = _check_overrides(message.get("overrides"))
        render = scene.render
        if render.use_border:
            raise CommandError("the scene has its own render border, so its frames are not full images; "
                               "regions cannot be checked")
        if render.use_stamp:
            raise CommandError("the scene burns metadata into its frames (render.use_stamp), which a region "
                               "render would draw in a different place; regions cannot be checked")
        percentage = overrides.get("resolution_percentage", render.resolution_percentage)
        width = overrides.get("resolution_x", render.resolution_x) * percentage // 100
        height = overrides.get("resolution_y", render.resolution_y) * percentage // 100
        rect = _check_rect(message.get("rect"), width, height)
        border = _border_for(rect, width, height)
        saved_border = {name: getattr(render, name) for name in BORDER_ATTRIBUTES}
        saved_settings = {}
        for name in overrides:
            try:
                target, attribute = _setting_target(scene, name)
            except CommandError as exc:
                raise CommandError(f"override {name}: {exc}") from None
            saved_settings[name] = getattr(target, attribute)
        started = time.monotonic()
        try:
            _apply_settings(scene, overrides)
            if _effective_resolution(scene) != [width, height]:  # cannot happen unless Blender changes the rule
                raise CommandError(f"Blender renders {_effective_resolution(scene)}, expected {[width, height]}")
            if _renders_regions_whole(scene):  # its compositor must see the whole frame
                render.use_border = False
                _render_still(scene, frame, output, expected_size=(rect[2], rect[3]), crop=rect)
            else:
                render.use_border = True
                render.use_crop_to_border = True
                for name, value in border.items():
                    setattr(render, name, value)
                _render_still(scene, frame, output, expected_size=(rect[2], rect[3]))
        finally:
            for name, value in saved_settings.items():
                target, attribute = _setting_target(scene, name)
                setattr(target, attribute, value)
            for name, value in saved_border.items():
                setattr(render, name, value)
        return {"event": "rendered_region", "frame": frame, "rect": list(rect), "resolution": [width, height],
                "path": output, "seconds": time.monotonic() - started}

    def quit(self, _message: dict[str, Any]) -> dict[str, Any]:
        """Say goodbye; the main loop stops after sending this."""
        return {"event": "bye"}


def serve(proto, stdin) -> int:
    """Greet, then answer commands from ``stdin`` until quit or EOF."""
    runner = Runner()
    _emit(proto, runner.ready())
    for raw in iter(stdin.readline, b""):
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        event = runner.dispatch(line)
        _unpin_threads()  # pool threads a render started (see _import_bpy)
        _emit(proto, event)
        if event["event"] == "bye":
            break
    return 0


def _own_arguments(argv: list[str]) -> list[str]:
    """The runner's own arguments: those after ``--`` in a blender binary (Blender's come before), else all."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def _threads_argument(args: list[str]) -> int | None:
    """``--threads N`` of the runner's arguments (N >= 1), or None: as many threads as the machine has."""
    if "--threads" not in args:
        return None
    at = args.index("--threads")
    value = args[at + 1] if at + 1 < len(args) else ""
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"framehive: --threads needs a whole number of at least 1, not {value!r}")
    return int(value)


def _import_bpy(threads: int | None):
    """Import bpy, its task scheduler sized for ``threads`` when given.

    Blender's task scheduler (oneTBB) makes its thread pool as large as the CPUs the process may run on when it
    is first used, which importing the bpy module does, and Cycles' thread setting does not shrink it: with fewer
    render threads than CPUs, the pool's other threads spin (sched_yield) beside the render. A runner told to use
    1 thread of this machine's 2 used both cores (about 12 CPU seconds for 6 seconds of rendering, 5 of them in
    the kernel), and two such runners took 1.5-2 s a frame instead of 0.9 (BENCHMARKS.md, "Per-job overhead").
    So the import runs on the first ``threads`` CPUs only: the pool keeps that size. oneTBB also starts its pool's
    threads on the CPUs it saw then, and the libraries' own threads started during the import inherit them, so
    every thread of the process is given all the CPUs back after the import, after each command and every second
    (:func:`_unpin_threads`; a pool thread first started by a render runs on those CPUs for a second at most).
    A blender binary has bpy imported already; the agent gives it Blender's own ``-t`` instead. Where there is no
    affinity call (macOS, Windows), the pool keeps the machine's size.
    """
    global _ALL_CPUS
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else set()
    if threads is None or "bpy" in sys.modules or threads >= len(allowed):
        import bpy as bpy_module
        return bpy_module
    os.sched_setaffinity(0, sorted(allowed)[:threads])
    try:
        import bpy as bpy_module
    finally:
        _ALL_CPUS = allowed
        _unpin_threads()
    return bpy_module


_ALL_CPUS: set[int] | None = None  # the CPUs the process was given, when the import ran on fewer


def _unpin_threads() -> None:
    """Give every thread of this process the CPUs it was started with (after the import ran on fewer)."""
    if _ALL_CPUS is None:
        return
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        threads = ["0"]  # no /proc: this thread at least
    for thread in threads:
        with contextlib.suppress(OSError, ValueError):  # a thread that has just ended
            os.sched_setaffinity(int(thread), _ALL_CPUS)


def main() -> int:
    """Entry point in both Blender and a bpy-enabled Python."""
    global bpy
    threads = _threads_argument(_own_arguments(sys.argv))
    proto = _claim_protocol_stream()
    # after the swap: Blender's start-up messages must not reach the protocol stream
    bpy = _import_bpy(threads)
    _install_hooks()
    return serve(proto, sys.stdin.buffer)


if __name__ == "__main__":
    # No sys.exit(0): inside a blender binary, falling off the end lets Blender finish its own shutdown.
    status = main()
    if status:
        sys.exit(status)
