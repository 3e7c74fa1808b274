"""The worker's scene cache stays under its size limit (worker_agent/cache_eviction.py): real files, real hard
links, and the real SceneCache downloading from a loopback HTTP server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from framehive.worker_agent import cache_eviction
from framehive.worker_agent.cache_eviction import prune, usage
from framehive.worker_agent.cli import GB, build_parser
from framehive.worker_agent.scene_cache import SceneCache
from framehive.worker_agent.scene_tree import TreeFile, assemble

from tests.worker.test_scene_tree import BlobServer, entry, order_scene, server, sha  # noqa: F401 - fixture

KB = 1024


def make_blob(blobs: Path, data: bytes, used_at: float) -> Path:
    path = blobs / sha(data)
    path.write_bytes(data)
    os.utime(path, (used_at, used_at))
    return path


def make_tree(blobs: Path, trees: Path, files: dict[str, bytes], used_at: float) -> Path:
    tree = assemble(trees, [TreeFile(p, sha(d), blobs / sha(d)) for p, d in files.items()])
    os.utime(tree, (used_at, used_at))
    return tree


@pytest.fixture
def cache(tmp_path: Path) -> tuple[Path, Path]:
    blobs, trees = tmp_path / "blobs", tmp_path / "trees"
    blobs.mkdir()
    return blobs, trees


def test_usage_counts_a_hard_linked_file_once(cache: tuple[Path, Path]) -> None:
    blobs, trees = cache
    data = b"x" * (10 * KB)
    make_blob(blobs, data, 100)
    make_tree(blobs, trees, {"a.blend": data, "copy/a.blend": data}, 100)
    assert usage(blobs, trees) == 10 * KB


def test_unused_blobs_go_first_then_the_least_recently_used_scenes(cache: tuple[Path, Path]) -> None:
    blobs, trees = cache
    old, new, loose = b"o" * (40 * KB), b"n" * (40 * KB), b"l" * (30 * KB)
    shared = b"s" * (20 * KB)
    for data, at in ((old, 100), (new, 300), (loose, 50), (shared, 100)):
        make_blob(blobs, data, at)
    old_tree = make_tree(blobs, trees, {"old.blend": old, "tex.png": shared}, 100)
    new_tree = make_tree(blobs, trees, {"new.blend": new, "tex.png": shared}, 300)
    assert usage(blobs, trees) == 130 * KB

    assert prune(blobs, trees, 100 * KB).blobs == [sha(loose)], "an unlinked blob is enough"
    assert old_tree.is_dir() and new_tree.is_dir()

    result = prune(blobs, trees, 70 * KB)
    assert result.trees == [old_tree.name] and result.blobs == [sha(old)]
    assert not old_tree.exists() and new_tree.is_dir()
    assert (blobs / sha(shared)).is_file(), "still linked by the newer scene"
    assert result.used == usage(blobs, trees) == 60 * KB and result.freed == 40 * KB


def test_kept_scenes_stay_even_over_the_limit(cache: tuple[Path, Path]) -> None:
    blobs, trees = cache
    big, other = b"b" * (50 * KB), b"o" * (20 * KB)
    make_blob(blobs, big, 100)
    make_blob(blobs, other, 200)
    kept = make_tree(blobs, trees, {"big.blend": big}, 100)
    gone = make_tree(blobs, trees, {"other.blend": other}, 200)
    result = prune(blobs, trees, 10 * KB, keep=[kept])
    assert kept.is_dir() and (kept / "big.blend").read_bytes() == big
    assert not gone.exists() and not (blobs / sha(other)).exists()
    assert result.used == 50 * KB > 10 * KB


def test_the_scene_cache_keeps_the_last_two_scenes_and_prunes_the_rest(tmp_path: Path, server: BlobServer) -> None:  # noqa: F811
    scenes = []
    for n in range(4):
        blend, texture = bytes([n]) * (30 * KB), bytes([100 + n]) * (30 * KB)
        server.add(blend)
        server.add(texture)
        scenes.append({**entry("shot.blend", blend), "assets": [entry("tex.png", texture)]})
    cache = SceneCache(tmp_path / "cache", requests.Session(), server.url, limit=130 * KB)
    mains = []
    for scene in scenes:
        mains.append(cache.ensure(scene))
        assert usage(cache.blobs, cache.trees) <= 130 * KB or len(mains) <= 2
    assert [m.exists() for m in mains] == [False, False, True, True]
    assert usage(cache.blobs, cache.trees) == 120 * KB
    downloads = len(server.requests)
    assert cache.ensure(scenes[0]).read_bytes() == bytes([0]) * (30 * KB), "an evicted scene is fetched again"
    assert len(server.requests) == downloads + 2
    assert not mains[2].exists() and mains[3].exists(), "now the least recently used of the last three went"


def test_without_a_limit_nothing_is_removed(tmp_path: Path, server: BlobServer) -> None:  # noqa: F811
    mains = []
    for n in range(3):
        blend = bytes([n]) * KB
        server.add(blend)
        mains.append(SceneCache(tmp_path / "cache", requests.Session(), server.url).ensure(order_scene_of(blend)))
    assert all(m.exists() for m in mains)


def order_scene_of(blend: bytes) -> dict:  # type: ignore[type-arg]
    return {**entry("shot.blend", blend), "assets": []}


def test_touch_ignores_a_file_removed_meanwhile(tmp_path: Path) -> None:
    cache_eviction.touch([tmp_path / "gone"])


@pytest.mark.parametrize(("text", "expected"), [("50", 50 * GB), ("0.5", GB // 2), ("0", None)])
def test_the_cache_limit_option_is_in_gigabytes(text: str, expected: int | None) -> None:
    args = build_parser().parse_args(["--cache-limit", text])
    assert args.cache_limit == expected
    assert build_parser().parse_args([]).cache_limit == 50 * GB


@pytest.mark.parametrize("text", ["-1", "lots", "nan", "inf"])
def test_a_bad_cache_limit_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cache-limit", text])
    err = capsys.readouterr().err
    assert "--cache-limit" in err and "gigabytes" in err


def test_a_scene_of_copies_frees_its_own_bytes(cache: tuple[Path, Path]) -> None:
    """On a file system without hard links a scene holds copies: removing it frees them at once."""
    blobs, trees = cache
    copied = trees / "copied"
    copied.mkdir(parents=True)
    (copied / "shot.blend").write_bytes(b"c" * (40 * KB))
    os.utime(copied, (100, 100))
    newer = b"n" * (20 * KB)
    make_blob(blobs, newer, 200)
    kept = make_tree(blobs, trees, {"new.blend": newer}, 200)
    result = prune(blobs, trees, 30 * KB)
    assert result.trees == ["copied"] and result.blobs == [] and kept.is_dir()
    assert result.freed == 40 * KB and result.used == usage(blobs, trees) == 20 * KB
