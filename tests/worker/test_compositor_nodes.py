"""Which compositor setups make the verifier render a check's region whole and crop it (real bpy, no rendering).

A region rendered alone (border + crop) goes through the compositor alone: a node that looks at more than the
pixel itself (a neighbourhood, the image's size or position, statistics of the image) changes the region's
pixels, and honest checks fail. Before, only a Denoise node was caught; a Glare node (the artists' bloom) let
regions be rendered alone. Per-pixel nodes (colour corrections, mixes, maths) keep the cheap region render.
"""

from __future__ import annotations

from collections.abc import Iterator

import bpy
import pytest
from framehive.worker_agent import render_runner


@pytest.fixture
def scene() -> Iterator[bpy.types.Scene]:
    scene = bpy.data.scenes.new("compositing")
    yield scene
    if scene.compositing_node_group is not None:
        bpy.data.node_groups.remove(scene.compositing_node_group)
    bpy.data.scenes.remove(scene)


def composite(scene: bpy.types.Scene, *kinds: str, group: bool = False) -> list[bpy.types.Node]:
    """Render Layers -> each node of ``kinds`` in turn -> output (inside a node group if ``group``)."""
    tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    inner = tree
    if group:
        inner = bpy.data.node_groups.new("Inner", "CompositorNodeTree")
        node = tree.nodes.new("CompositorNodeGroup")
        node.node_tree = inner
    nodes = [inner.nodes.new(kind) for kind in kinds]
    tree.nodes.new("CompositorNodeRLayers")
    tree.nodes.new("NodeGroupOutput")
    scene.compositing_node_group = tree
    scene.render.use_compositing = True
    return nodes


@pytest.mark.parametrize("kind", ["CompositorNodeDenoise", "CompositorNodeGlare", "CompositorNodeBlur",
                                  "CompositorNodeLensdist", "CompositorNodeLevels", "CompositorNodeBoxMask",
                                  "CompositorNodeTransform", "CompositorNodeImage", "CompositorNodeDefocus"])
def test_a_node_that_sees_more_than_its_pixel_makes_regions_whole(scene, kind: str) -> None:  # type: ignore[no-untyped-def]
    composite(scene, "CompositorNodeExposure", kind)
    assert render_runner._renders_regions_whole(scene)


def test_one_inside_a_node_group_too(scene) -> None:  # type: ignore[no-untyped-def]
    composite(scene, "ShaderNodeMix", "CompositorNodeGlare", group=True)
    assert render_runner._renders_regions_whole(scene)


def test_per_pixel_nodes_keep_region_renders(scene) -> None:  # type: ignore[no-untyped-def]
    composite(scene, "CompositorNodeExposure", "CompositorNodeHueSat", "ShaderNodeMix", "ShaderNodeMath",
              "CompositorNodeCurveRGB", "NodeReroute", group=True)
    assert not render_runner._renders_regions_whole(scene)


def test_a_muted_node_or_compositing_off_changes_nothing(scene) -> None:  # type: ignore[no-untyped-def]
    (glare,) = composite(scene, "CompositorNodeGlare")
    glare.mute = True
    assert not render_runner._renders_regions_whole(scene)
    glare.mute = False
    scene.render.use_compositing = False
    assert not render_runner._renders_regions_whole(scene)
