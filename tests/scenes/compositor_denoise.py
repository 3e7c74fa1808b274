"""Generate the sample scene denoised by the compositor: a Denoise node between Render Layers and the output.

Run under a Python that has ``bpy``::

    python tests/scenes/compositor_denoise.py OUT.blend [--frames N] [--width W] [--height H] [--samples S]

Cycles' own denoiser stays off (the sample scene pins it off, with dither 0): the noise is removed in the scene's
compositing node group instead (Blender 5: ``scene.compositing_node_group``), as artists do who want the
Denoise node's options or denoise passes separately. The compositor runs on what was rendered, so a region
render (border + crop) is denoised without the pixels around it, like Cycles' OIDN.
"""

from __future__ import annotations

import sys

import bpy
from artist_defaults import _load_make_scene  # a sibling script (run by path, its folder is on sys.path)


def add_compositor_denoise(scene: bpy.types.Scene) -> bpy.types.Node:
    """Give ``scene`` a compositing node group Render Layers -> Denoise -> Group Output; returns the Denoise node."""
    tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    layers = tree.nodes.new("CompositorNodeRLayers")
    denoise = tree.nodes.new("CompositorNodeDenoise")
    output = tree.nodes.new("NodeGroupOutput")
    tree.links.new(layers.outputs["Image"], denoise.inputs["Image"])
    tree.links.new(denoise.outputs["Image"], output.inputs[0])
    scene.compositing_node_group = tree
    scene.render.use_compositing = True
    return denoise


def main(argv: list[str]) -> None:
    make_scene = _load_make_scene()
    args = make_scene._parse_args(argv)
    out = make_scene.build_scene(args.out, frames=args.frames, width=args.width, height=args.height,
                                 samples=args.samples)
    scene = bpy.context.scene
    scene.cycles.use_denoising = False  # only the compositor denoises (the sample scene pins it off already)
    add_compositor_denoise(scene)
    out.unlink()  # saving over it would leave a ``.blend1`` backup next to it
    bpy.ops.wm.save_as_mainfile(filepath=str(out))


if __name__ == "__main__":
    main(sys.argv[1:])
