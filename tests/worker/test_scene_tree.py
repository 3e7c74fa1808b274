"""The worker lays a scene's files out as a folder tree, and refuses paths that would write anywhere else.

The coordinator is not trusted with the agent's disk: a hostile file list is refused before a byte is
downloaded, and whatever goes wrong leaves nothing outside the cache and no half-built tree inside it. Blobs
come from a real HTTP server on loopback, so downloads, hashing and the cache are the agent's own code paths.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.protocol.scenepaths import BadPath
from framehive.worker_agent.scene_cache import SceneCache, SceneDownloadError
from framehive.worker_agent.scene_tree import TreeFile, UnsafeTree, assemble, link_into, tree_key

# Not .blend headers: the agent's reference check (test_reference_check.py) refuses a "BLENDER" file it cannot read,
# and these tests are about laying files out.
BLEND = b"pretend scene"
TEXTURE = b"pretend PNG"
LIBRARY = b"pretend library"
POLL_INTERVAL = 0.01  # seconds


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobServer:
    """Serves ``/api/v1/blobs/<sha>`` from a dict (the bytes may be wrong on purpose) and counts requests."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                server.requests.append(self.path)
                data = server.blobs.get(self.path.rsplit("/", 1)[-1])
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval: shutdown() waits for the serving loop to notice.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True)
        self.thread.start()

    def add(self, data: bytes, served: bytes | None = None) -> str:
        self.blobs[sha(data)] = data if served is None else served
        return sha(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[BlobServer]:
    blobs = BlobServer()
    yield blobs
    blobs.close()


def entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "sha256": sha(data), "size": len(data), "url": f"/api/v1/blobs/{sha(data)}"}


def order_scene(path: str, assets: list[dict[str, Any]]) -> dict[str, Any]:
    """An order's ``scene`` as the coordinator sends it."""
    return {**entry(path, BLEND), "assets": assets}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------------------- laying out the tree


def blob(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "blobs" / sha(data)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_tree_is_built_once_from_hard_links_and_named_by_its_content(tmp_path: Path) -> None:
    files = [TreeFile("shots/shot.blend", sha(BLEND), blob(tmp_path, BLEND)),
             TreeFile("textures/checker.png", sha(TEXTURE), blob(tmp_path, TEXTURE))]
    tree = assemble(tmp_path / "trees", files)
    assert tree == tmp_path / "trees" / tree_key(files)
    assert files_under(tree) == ["shots", "shots/shot.blend", "textures", "textures/checker.png"]
    assert (tree / "textures" / "checker.png").stat().st_ino == files[1].source.stat().st_ino, "linked, not copied"
    built = (tree / "shots").stat().st_ino
    assert assemble(tmp_path / "trees", list(reversed(files))) == tree, "the same files are the same tree"
    assert (tree / "shots").stat().st_ino == built, "an existing tree is reused, not rebuilt"
    moved = [files[0], TreeFile("maps/checker.png", files[1].sha256, files[1].source)]
    assert assemble(tmp_path / "trees", moved) != tree, "another layout is another tree"


HOSTILE = ["../outside.png", "textures/../../outside.png", "/tmp/outside.png", "C:/outside.png",
           "textures\\..\\..\\outside.png", "textures/a\x00.png", "./textures/a.png", "textures//a.png", ""]


@pytest.mark.parametrize("path", HOSTILE, ids=repr)
def test_hostile_paths_are_refused_and_nothing_is_written(tmp_path: Path, path: str) -> None:
    trees = tmp_path / "cache" / "trees"
    files = [TreeFile("shots/shot.blend", sha(BLEND), blob(tmp_path, BLEND)),
             TreeFile(path, sha(TEXTURE), blob(tmp_path, TEXTURE))]
    with pytest.raises(BadPath):
        assemble(trees, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs"], "nothing was created anywhere"


def test_two_paths_for_one_file_are_refused(tmp_path: Path) -> None:
    files = [TreeFile("textures/Checker.png", sha(BLEND), blob(tmp_path, BLEND)),
             TreeFile("textures/checker.png", sha(TEXTURE), blob(tmp_path, TEXTURE))]
    with pytest.raises(BadPath, match="same file"):
        assemble(tmp_path / "trees", files)


def test_a_failure_half_way_leaves_no_half_built_tree(tmp_path: Path) -> None:
    files = [TreeFile("shots/shot.blend", sha(BLEND), blob(tmp_path, BLEND)),
             TreeFile("textures/gone.png", sha(TEXTURE), tmp_path / "blobs" / "vanished")]
    with pytest.raises(FileNotFoundError):
        assemble(tmp_path / "trees", files)
    assert files_under(tmp_path / "trees") == []


def test_no_file_is_linked_through_a_symlink(tmp_path: Path) -> None:
    """Defence in depth: a tree is built in a fresh private folder, but a symlink found there is not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "tree"
    root.mkdir()
    (root / "textures").symlink_to(outside, target_is_directory=True)
    (root / "shots").mkdir()
    (root / "shots" / "shot.blend").symlink_to(outside / "shot.blend")
    source = blob(tmp_path, TEXTURE)
    with pytest.raises(UnsafeTree, match="symlink"):
        link_into(root, "textures/checker.png", source)
    with pytest.raises(UnsafeTree, match="already"):
        link_into(root, "shots/shot.blend", source)
    with pytest.raises(UnsafeTree, match="normalised"):
        link_into(root, "../outside/x.png", source)
    (root / "lib").write_bytes(b"a file where a folder should be")
    with pytest.raises(UnsafeTree, match="not a folder"):
        link_into(root, "lib/sphere.blend", source)
    assert list(outside.iterdir()) == []
    link_into(root, "maps/checker.png", source)
    assert (root / "maps" / "checker.png").read_bytes() == TEXTURE


# ------------------------------------------------------------------------------------- from an order


def test_an_order_becomes_a_tree_with_each_blob_downloaded_once(tmp_path: Path, server: BlobServer) -> None:
    for data in (BLEND, TEXTURE, LIBRARY):
        server.add(data)
    cache = SceneCache(tmp_path / "cache", requests.Session(), server.url)
    scene = order_scene("shots/shot.blend", [entry("textures/checker.png", TEXTURE),
                                             entry("textures/copy.png", TEXTURE), entry("lib/sphere.blend", LIBRARY)])
    main = cache.ensure(scene)
    assert main.read_bytes() == BLEND and main.parts[-2:] == ("shots", "shot.blend")
    tree = main.parent.parent
    assert (tree / "textures" / "copy.png").read_bytes() == TEXTURE
    assert (tree / "lib" / "sphere.blend").read_bytes() == LIBRARY
    assert len(server.requests) == 3, "one download per distinct blob"
    assert cache.ensure(scene) == main and len(server.requests) == 3, "cached: nothing downloaded again"


def test_an_order_from_an_older_coordinator_is_a_lone_blend(tmp_path: Path, server: BlobServer) -> None:
    server.add(BLEND)
    cache = SceneCache(tmp_path / "cache", requests.Session(), server.url)
    main = cache.ensure({"sha256": sha(BLEND), "url": f"/api/v1/blobs/{sha(BLEND)}"})
    assert main.name == "scene.blend" and main.read_bytes() == BLEND


@pytest.mark.parametrize("path", HOSTILE, ids=repr)
def test_a_hostile_order_is_refused_before_any_download(tmp_path: Path, server: BlobServer, path: str) -> None:
    server.add(BLEND)
    server.add(TEXTURE)
    cache = SceneCache(tmp_path / "cache", requests.Session(), server.url)
    for scene in (order_scene("shots/shot.blend", [entry(path, TEXTURE)]), order_scene(path, [])):
        with pytest.raises(SceneDownloadError, match="refusing"):
            cache.ensure(scene)
    assert server.requests == []
    assert files_under(tmp_path) == ["cache", "cache/blobs"]


# An entry's url is not among these: the agent builds each URL from the sha256, and refuses an order whose url
# differs before the scene is looked at (worker_agent/coordinator_urls.py, tests/worker/test_order_urls.py).
@pytest.mark.parametrize("bad", [
    {"sha256": "../../etc/passwd"}, {"sha256": "A" * 64}, {"size": -1}, {"size": "3"},
], ids=["traversal sha", "upper-case sha", "negative size", "size string"])
def test_malformed_file_entries_are_refused(tmp_path: Path, server: BlobServer, bad: dict[str, Any]) -> None:
    cache = SceneCache(tmp_path / "cache", requests.Session(), server.url)
    with pytest.raises(SceneDownloadError):
        cache.ensure(order_scene("shots/shot.blend", [{**entry("textures/a.png", TEXTURE), **bad}]))
    assert server.requests == []


@pytest.mark.parametrize("served", [b"tampered PNG", TEXTURE + b" and then some"], ids=["other bytes", "longer"])
def test_a_blob_that_is_not_what_was_announced_is_not_kept(tmp_path: Path, server: BlobServer,
                                                           served: bytes) -> None:
    server.add(BLEND)
    server.add(TEXTURE, served=served)
    cache = SceneCache(tmp_path / "cache", requests.Session(), server.url)
    with pytest.raises(SceneDownloadError, match="textures/checker.png"):
        cache.ensure(order_scene("shots/shot.blend", [entry("textures/checker.png", TEXTURE)]))
    assert sorted(p.name for p in (tmp_path / "cache" / "blobs").iterdir()) == [sha(BLEND)], "only verified blobs"
    assert not (tmp_path / "cache" / "trees").exists() or files_under(tmp_path / "cache" / "trees") == []
