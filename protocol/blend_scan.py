"""What one .blend says, read as data with blender-asset-tracer (BAT), never with Blender: its active scene and every
file it tells Blender to read.

The references are what BAT's trace sees in this file's own datablocks (images, movie clips, sounds, fonts, linked
libraries, volumes, cache files, external mesh data, modifier caches, geometry-nodes bakes, sequencer strips), and
what BAT does not see, added here: IES textures and OSL scripts in every node tree (BAT looks at lights only), and
the geometry-nodes Import nodes (OBJ, PLY, STL, CSV, Text, VDB), which read any file their Path input names while
the scene is evaluated, no Python needed (measured on bpy 5.0.1: Import OBJ at an absolute path, or at
``//``-relative one, puts that file's vertices in the mesh). An Import node whose path is computed (its Path input
is linked) cannot be checked, so it is reported as unsupported. So are fluid domains: Mantaflow caches on disk only,
writes its cache folder while the file is *opened* (before the render runner can switch anything off), and reads
cache files that a crafted tree turns into a crash (measured: see framehive.protocol.blend_references).

Libraries are not followed: :mod:`framehive.protocol.untrusted_parse` scans every .blend of a scene's tree, each on
its own,
and :mod:`framehive.protocol.blend_references` resolves each file's paths against the folder that file sits in (Blender
resolves a library's ``//`` paths against the library's own folder). Following BAT's expansion into libraries
instead would open whatever path the file names, on the machine doing the check.

Runs inside the child process of :mod:`framehive.protocol.untrusted_parse` (BAT holds whole files' block lists in
memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blender_asset_tracer import blendfile, cdefs, trace
from blender_asset_tracer.blendfile import header, iterators
from blender_asset_tracer.trace import blocks2assets

from .blend_inflate import TooLarge

# A file naming more distinct paths than this is refused: the list travels back to the parent and is kept.
MAX_REFERENCES = 20_000
# ID codes as people know them, for messages.
ID_KINDS = {b"IM": "image", b"LI": "library", b"MC": "movie clip", b"SO": "sound", b"VF": "font", b"VO": "volume",
            b"CF": "cache file", b"ME": "mesh", b"OB": "object", b"SC": "scene", b"LA": "light", b"MA": "material",
            b"WO": "world", b"NT": "node group", b"TE": "texture", b"LS": "line style", b"BR": "brush"}
# What a reference is, by the DNA struct BAT found it in.
STRUCT_KINDS = {"Image": "image", "Library": "linked library", "MovieClip": "movie clip", "bSound": "sound",
                "VFont": "font", "Volume": "volume", "CacheFile": "cache file", "Mesh": "external mesh data",
                "Strip": "sequencer strip", "Sequence": "sequencer strip", "PointCache": "point cache",
                "MeshCacheModifierData": "mesh cache", "OceanModifierData": "ocean cache",
                "FluidsimSettings": "fluid cache (legacy)", "NodesModifierData": "geometry nodes bake",
                "NodesModifierBake": "geometry nodes bake"}
# Handled by this module's own walkers instead of BAT's (which covers them only partly).
OWN_STRUCTS = {"FluidDomainSettings", "SmokeDomainSettings", "NodeShaderTexIES"}
IMPORT_NODES = {"GeometryNodeImportCSV", "GeometryNodeImportOBJ", "GeometryNodeImportPLY", "GeometryNodeImportSTL",
                "GeometryNodeImportText", "GeometryNodeImportVDB"}
# Nodes whose storage holds a file path, used when their mode is "external" (1 for both, DNA_node_types.h).
STORAGE_PATH_NODES = {"ShaderNodeTexIES": "IES texture", "ShaderNodeScript": "OSL script"}
EXTERNAL_MODE = 1


class Unreadable(ValueError):
    """BAT could not read part of the file, so its references cannot all be listed."""


def scan(path: Path, max_blocks: int) -> dict[str, Any]:
    """The active scene (``scene``: its name, None when the file has none; ``frame_start``, ``frame_end``,
    ``resolution``, ``blender_version``) and the file's ``references`` and ``unsupported`` features, as JSON.
    ``path`` is an uncompressed .blend; one of more than ``max_blocks`` blocks raises TooLarge before BAT reads
    it (BAT keeps an object per block: a bomb of empty blocks costs it 300 bytes of memory per 24 of file)."""
    count_blocks(path, max_blocks)
    blendfile.set_strict_pointer_mode(False)  # a dangling pointer is None, not an exception
    try:
        bf = blendfile.BlendFile(path)
    except MemoryError:
        raise
    except Exception as exc:  # untrusted bytes: any parse failure means "not a .blend we can read"
        raise Unreadable(f"not a readable .blend file: {exc}") from None
    try:
        references = _bat_references(bf) + _node_references(bf)
        unsupported = _fluid_domains(bf) + _computed_imports(bf)
        unique = list({(ref["datablock"], ref["path"]): ref for ref in references}.values())
        if len(unique) > MAX_REFERENCES:
            raise Unreadable(f"the file names {len(unique)} external files; at most {MAX_REFERENCES} are allowed")
        return {**(_scene(bf) or {"scene": None}), "references": unique, "unsupported": unsupported}
    except (Unreadable, MemoryError):
        raise
    except Exception as exc:
        raise Unreadable(f"unreadable .blend file: {exc}") from None
    finally:
        bf.close()


def count_blocks(path: Path, most: int) -> int:
    """The number of blocks, walking their headers only; TooLarge past ``most``, Unreadable on a bad header."""
    with path.open("rb") as file:
        try:
            head = header.BlendFileHeader(file, path)
        except Exception as exc:
            raise Unreadable(f"not a readable .blend file: {exc}") from None
        layout, fields = head.create_block_header_struct()
        size_at = 3 if fields is header.LargeBHead8 else 1  # where the block's data length is in its header
        count = 0
        while len(data := file.read(layout.size)) == layout.size:
            values = layout.unpack(data)
            if values[0] == b"ENDB":
                break
            if values[size_at] < 0:
                raise Unreadable(f"block {count} has a negative length")
            count += 1
            if count > most:
                raise TooLarge(f"the .blend has more than {most} blocks")
            file.seek(values[size_at], 1)
        return count


# ---------------------------------------------------------------------------------------------- scene


def _scene(bf: blendfile.BlendFile) -> dict[str, Any] | None:
    """The active scene's name, frame range and output resolution (after the percentage), and the version."""
    scene = _active_scene(bf)
    if scene is None:
        return None
    percent = scene.get((b"r", b"size"))
    width, height = scene.get((b"r", b"xsch")), scene.get((b"r", b"ysch"))
    version = bf.header.version  # e.g. 500 for 5.0
    return {
        "scene": _id_text(scene),
        "frame_start": int(scene.get((b"r", b"sfra"))),
        "frame_end": int(scene.get((b"r", b"efra"))),
        "resolution": [int(width * percent / 100), int(height * percent / 100)],
        "blender_version": f"{version // 100}.{version % 100}",
    }


def _active_scene(bf: blendfile.BlendFile) -> blendfile.BlendFileBlock | None:
    """The scene Blender makes current on load (FileGlobal.curscene), else the first scene."""
    for glob in bf.find_blocks_from_code(b"GLOB"):
        scene = glob.get_pointer(b"curscene", None)
        if scene is not None:
            return scene
    scenes = bf.find_blocks_from_code(b"SC")
    return scenes[0] if scenes else None


# ---------------------------------------------------------------------------------------------- references


def _bat_references(bf: blendfile.BlendFile) -> list[dict[str, Any]]:
    """Every path BAT's trace finds in this file's own datablocks (its expansion into libraries is not used)."""
    strips = _strip_names(bf)
    found = []
    for block in trace.asset_holding_blocks(bf.blocks):
        try:
            usages = list(blocks2assets.iter_assets(block))
        except Exception as exc:  # fail closed: a datablock whose paths cannot be read is not rendered
            raise Unreadable(f"cannot read the file paths of {_id_label(block)}: {exc}") from None
        for usage in usages:
            struct = usage.block.dna_type_name
            path = bytes(usage.asset_path)
            if struct in OWN_STRUCTS or not path:
                continue
            label = strips.get(usage.block.addr_old) or _usage_label(usage.block_name)
            found.append(_reference(label, STRUCT_KINDS.get(struct, struct), path, usage.is_sequence))
    return found


def _node_references(bf: blendfile.BlendFile) -> list[dict[str, Any]]:
    """IES textures and OSL scripts in external mode, and Import nodes with a constant path, in every node tree."""
    found = []
    for tree, owner in _node_trees(bf):
        linked = _linked_sockets(tree)
        for node in _listbase(tree.get_pointer((b"nodes", b"first"), None)):
            idname = node.get(b"idname", as_str=True)
            label = f"{owner}, node \"{node.get(b'name', as_str=True)}\""
            storage = node.get_pointer(b"storage", None) if idname in STORAGE_PATH_NODES else None
            if storage is not None and storage.get(b"mode") == EXTERNAL_MODE:
                found.append(_reference(label, STORAGE_PATH_NODES[idname], storage.get(b"filepath"), False))
            if idname in IMPORT_NODES:
                socket = _path_socket(node)
                if socket is not None and (node.addr_old, socket.addr_old) not in linked:
                    value = socket.get_pointer(b"default_value", None)
                    path = value.get(b"value") if value is not None else b""
                    if path:
                        found.append(_reference(label, "imported file", path, False))
    return found


def _reference(datablock: str, kind: str, path: bytes, sequence: bool) -> dict[str, Any]:
    return {"datablock": datablock, "kind": kind, "path": _path_text(path), "sequence": bool(sequence)}


# ---------------------------------------------------------------------------------------------- unsupported


def _fluid_domains(bf: blendfile.BlendFile) -> list[dict[str, Any]]:
    """Fluid domains (and the smoke domains of older files, which Blender turns into fluid domains on load)."""
    found = []
    for obj in bf.find_blocks_from_code(b"OB"):
        for modifier in _listbase(obj.get_pointer((b"modifiers", b"first"), None), (b"modifier", b"next")):
            kind = modifier[b"modifier", b"type"]
            if kind not in (cdefs.eModifierType_Fluid, cdefs.eModifierType_Smokesim):
                continue
            domain = modifier.get_pointer(b"domain", None)
            if domain is None:
                continue  # a flow or an effector: it caches nothing
            field = b"cache_directory" if domain.dna_type.has_field(b"cache_directory") else None
            path = domain.get(field) if field else b""
            name = _text(modifier.get((b"modifier", b"name")))
            found.append({"datablock": f"{_id_label(obj)}, modifier \"{name}\"", "kind": "fluid domain",
                          "path": _path_text(path), "code": "unsupported_cache",
                          "reason": "fluid simulations are not rendered on the network: Blender writes their cache "
                                    "while it opens the file, and reads cache files a scene could craft to crash "
                                    "it; bake the fluid and export it as Alembic or OpenVDB (a mesh sequence cache "
                                    "or a volume object) instead"})
    return found


def _computed_imports(bf: blendfile.BlendFile) -> list[dict[str, Any]]:
    found = []
    for tree, owner in _node_trees(bf):
        linked = _linked_sockets(tree)
        for node in _listbase(tree.get_pointer((b"nodes", b"first"), None)):
            if node.get(b"idname", as_str=True) not in IMPORT_NODES:
                continue
            socket = _path_socket(node)
            if socket is not None and (node.addr_old, socket.addr_old) in linked:
                found.append({"datablock": f"{owner}, node \"{node.get(b'name', as_str=True)}\"",
                              "kind": "imported file", "path": "", "code": "outside_reference",
                              "reason": "its Path input is computed by the node tree, so where it reads cannot be "
                                        "checked; give the node a fixed path inside the scene's folder"})
    return found


# ---------------------------------------------------------------------------------------------- walking


def _node_trees(bf: blendfile.BlendFile) -> list[tuple[blendfile.BlendFileBlock, str]]:
    """Every node tree of the file (node groups, and those embedded in materials, lights, worlds, ...) with a
    label naming its owner."""
    owners = {}
    for block in bf.blocks:
        if len(block.code) == 2 and block.dna_type.has_field(b"nodetree"):
            tree = block.get_pointer(b"nodetree", None)
            if tree is not None:
                owners[tree.addr_old] = _id_label(block)
    trees = []
    for block in bf.blocks:
        if block.dna_type_name == "bNodeTree":
            owner = _id_label(block) if len(block.code) == 2 else owners.get(block.addr_old, "a node tree")
            trees.append((block, owner))
    return trees


def _linked_sockets(tree: blendfile.BlendFileBlock) -> set[tuple[int, int]]:
    """(node, socket) addresses of the tree's linked inputs."""
    return {(link.get(b"tonode"), link.get(b"tosock"))
            for link in _listbase(tree.get_pointer((b"links", b"first"), None))}


def _path_socket(node: blendfile.BlendFileBlock) -> blendfile.BlendFileBlock | None:
    for socket in _listbase(node.get_pointer((b"inputs", b"first"), None)):
        if socket.get(b"identifier", as_str=True) == "Path":
            return socket
    return None


def _strip_names(bf: blendfile.BlendFile) -> dict[int, str]:
    """Sequencer strips by the address of their strip data (the block BAT reports), labelled for messages."""
    names = {}
    for scene in bf.find_blocks_from_code(b"SC"):
        editor = scene.get_pointer(b"ed", None)
        if editor is None:
            continue
        for strip, _kind in iterators.sequencer_strips(editor):
            data = strip.get_pointer(b"strip", None)
            if data is not None:
                names[data.addr_old] = f"{_id_label(scene)}, strip \"{_text(strip.get(b'name')[2:])}\""
    return names


def _listbase(first: blendfile.BlendFileBlock | None, next_path: Any = b"next") -> Iterator[blendfile.BlendFileBlock]:
    """BAT's listbase walk, stopping at a cycle (a crafted file may link a list back into itself)."""
    seen: set[int] = set()
    for item in iterators.listbase(first, next_path):
        if item.addr_old in seen:
            return
        seen.add(item.addr_old)
        yield item


def _id_label(block: blendfile.BlendFileBlock) -> str:
    if len(block.code) == 2 and block.code in ID_KINDS:
        return f"{ID_KINDS[block.code]} \"{_id_text(block)}\""
    return block.dna_type_name


def _usage_label(block_name: bytes) -> str:
    """BAT's name for a usage (``IMwood.png``, ``OBCube.modifiers[1]``) as people read it."""
    code, rest = block_name[:2], block_name[2:]
    if code not in ID_KINDS:
        return _text(block_name)
    name, dot, tail = rest.partition(b".modifiers[")
    return f"{ID_KINDS[code]} \"{_text(name)}\"" + (f", modifiers[{_text(tail)}" if dot else "")


def _id_text(block: blendfile.BlendFileBlock) -> str:
    """The name of the ID datablock ``block``, without its two-letter code."""
    if block.id_name is None:  # a crafted file; the parse fails closed like any other broken block
        raise ValueError(f"a {block.dna_type_name} block without an ID name")
    return _text(block.id_name[2:])


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _path_text(raw: bytes) -> str:
    """A path as text; bytes that are not UTF-8 are kept as lone surrogates (JSON carries them as escapes), so
    that a path never changes on its way to the check."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
