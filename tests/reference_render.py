"""Render frames of a scene directly with bpy, outside Framehive: the reference the network must match.

Usage: python tests/reference_render.py SCENE.blend OUT_DIR FRAME [FRAME ...]
"""

import sys

import bpy


def main() -> None:
    scene_path, out_dir, *frames = sys.argv[1:]
    bpy.ops.wm.open_mainfile(filepath=scene_path, load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    scene.render.threads_mode = "FIXED"
    # The thread count does not change Cycles' CPU output (part (a) of benchmarks/verification.py checks it).
    scene.render.threads = 2
    for frame in map(int, frames):
        scene.frame_set(frame)
        scene.render.filepath = f"{out_dir}/ref_{frame:04d}.png"
        bpy.ops.render.render(write_still=True)


main()
