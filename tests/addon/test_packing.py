"""addon/packing.py on a real project made by real Blender (tests/scenes/asset_project.py, in a subprocess):
a texture by absolute path outside the .blend's folder, a linked library whose own texture sits in a folder with
spaces and accents, an external point cache, and a deleted image. The packed tree is checked with BAT's own
tracer and, once, rendered by Blender from somewhere else. Nothing from outside the .blend's folder is packed
unless allowed (a .blend may name any file on the disk, ~/.ssh/id_rsa included), nor is a scene with missing
files: both are listed before anything is copied.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from blender_asset_tracer import blendfile, trace
from blender_asset_tracer.pack import transfer
from framehive.addon import packing

from tests.images import colours
from tests.scenes import ASSET_PROJECT, build_asset_project, outside_files, snapshot

TREE = {
    "shot.blend",
    "assets/textures/checker.png",
    "assets/project/lib/sphere.blend",
    "assets/shared assets/tëxtures ü/stripes.png",
    *(f"assets/caches/cloth/cloth_00000{frame}_00.bphys" for frame in (1, 2, 3)),
}
GREEN, BLUE, RED, WHITE, MAGENTA = (0, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255), (255, 0, 255)


def pack_all(blend: Path, target: Path, **options: Any) -> packing.Pack:
    """Pack with every file from outside the .blend's folder and every missing one allowed."""
    return packing.pack(blend, target, allow_outside=True, allow_missing=True, **options)


def dependencies(blend: Path) -> list[tuple[str, str, Path]]:
    """(file that refers, path as written, where it resolves) for every dependency BAT finds."""
    try:
        return [(Path(usage.block.bfile.filepath).name, str(usage.asset_path), usage.abspath)
                for usage in trace.deps(blend)]
    finally:
        blendfile.close_all_cached()


def transferers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if isinstance(thread, transfer.FileTransferer)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Built once, under a folder whose name has spaces, an apostrophe and accents; never written to."""
    return build_asset_project(tmp_path_factory.mktemp("packing") / "Ärtist's wörk")


def test_the_tree_holds_the_scene_and_every_file_it_uses(project: dict[str, Path], tmp_path: Path) -> None:
    steps: list[str] = []
    result = pack_all(project["blend"], tmp_path / "pack", progress=steps.append)

    assert result.root == tmp_path / "pack"
    assert result.main == "shot.blend"
    assert set(result.files) == TREE
    assert set(result.files) == {p.relative_to(result.root).as_posix() for p in result.root.rglob("*") if p.is_file()}
    assert all(path == result.root / name for name, path in result.files.items())
    assert result.size == sum(path.stat().st_size for path in result.files.values())
    # Textures and caches are copied byte for byte; only .blend files are rewritten.
    assert result.files["assets/textures/checker.png"].read_bytes() == project["texture"].read_bytes()
    assert result.files["assets/shared assets/tëxtures ü/stripes.png"].read_bytes() == project["stripes"].read_bytes()
    assert (result.files["assets/caches/cloth/cloth_000002_00.bphys"].read_bytes()
            == (project["cache"] / "cloth_000002_00.bphys").read_bytes())
    assert {"reading shot.blend", "reading sphere.blend", "copying shot.blend",
            "copying assets/textures/checker.png"} <= set(steps), steps
    assert steps[-1].startswith("packed 7 files (") and steps[-1].endswith(" MB); 1 missing"), steps[-1]


# The missing image keeps a place in the tree (nothing is copied there), so that its path stays inside it.
GONE = "//assets/project/shots/textures/gone.png"


def test_packed_blends_refer_to_their_files_inside_the_tree(project: dict[str, Path], tmp_path: Path) -> None:
    result = pack_all(project["blend"], tmp_path / "pack")
    deps = dependencies(result.root / result.main)

    by_path = {written: (user, resolved) for user, written, resolved in deps}
    assert set(by_path) == {"//assets/textures/checker.png", "//assets/project/lib/sphere.blend",
                            "//assets/caches/cloth", GONE,
                            "//../../shared assets/tëxtures ü/stripes.png"}, deps
    # The library's own texture is found (BAT 1.23 alone misses textures of linked materials in 5.0 files),
    # and its relative path still holds because the library kept its place relative to it.
    assert by_path["//../../shared assets/tëxtures ü/stripes.png"][0] == "sphere.blend"
    for user, written, resolved in deps:
        assert written.startswith("//"), (user, written)
        assert resolved.resolve().is_relative_to(result.root.resolve()), (user, written, resolved)
        if written != GONE:
            assert resolved.exists(), (user, written, resolved)
    assert not by_path[GONE][1].exists()
    # The originals still point where they always did.
    assert {written for _user, written, _resolved in dependencies(project["blend"])} >= {
        str(project["texture"]), "//../lib/sphere.blend", str(project["cache"]), "//textures/gone.png"}


def test_missing_lists_exactly_the_deleted_image(project: dict[str, Path], tmp_path: Path) -> None:
    result = pack_all(project["blend"], tmp_path / "pack")
    gone = str(project["missing"])  # where Blender looks for it: //textures/gone.png, next to the .blend
    assert result.missing == [gone]

    with pytest.raises(packing.NeedsConfirmation) as refused:  # the same, without missing files allowed
        packing.pack(project["blend"], tmp_path / "refused", allow_outside=True)
    assert (refused.value.missing, refused.value.outside) == ([gone], [])
    assert str(refused.value).startswith(f"1 file(s) the scene uses could not be found: {gone}. "
                                         "Blender renders missing images magenta"), refused.value
    assert not (tmp_path / "refused").exists()

    library = packing.pack(project["library"], tmp_path / "library", allow_outside=True)  # nothing missing
    assert library.missing == []
    assert set(library.files) == {"sphere.blend", "assets/stripes.png"}
    deps = dependencies(library.root / library.main)
    assert [(written, resolved.exists()) for _user, written, resolved in deps] == [("//assets/stripes.png", True)]


def test_missing_files_of_a_library_name_the_library(project: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(project["root"], copy)
    (copy / "shared assets" / "tëxtures ü" / "stripes.png").unlink()

    result = pack_all(copy / "project" / "shots" / "shot.blend", tmp_path / "pack")

    assert result.missing == [f"{copy}/project/shots/textures/gone.png",
                              f"{copy}/shared assets/tëxtures ü/stripes.png (in sphere.blend)"]
    assert "assets/shared assets/tëxtures ü/stripes.png" not in result.files


def test_the_originals_are_untouched_and_nothing_is_written_outside_the_target(project: dict[str, Path]) -> None:
    before = snapshot(project["root"])
    target = project["blend"].parent / "packed"  # inside the project: the pack must not pick up itself
    try:
        result = pack_all(project["blend"], target)
        after = snapshot(project["root"])
        added = {name for name in after if name not in before}
        assert {name: after[name] for name in before} == before, "an original file changed"
        assert added == {f"project/shots/packed/{name}" for name in result.files}
        assert set(result.files) == TREE
    finally:
        shutil.rmtree(target, ignore_errors=True)
    assert snapshot(project["root"]) == before


def test_packing_twice_gives_the_same_bytes(project: dict[str, Path], tmp_path: Path) -> None:
    """The coordinator stores files by sha256: the same scene packed again must upload nothing new."""
    first = pack_all(project["blend"], tmp_path / "first")
    second = pack_all(project["blend"], tmp_path / "second")

    assert {name: path.read_bytes() for name, path in first.files.items()} == {
        name: path.read_bytes() for name, path in second.files.items()}
    assert first.files["shot.blend"].read_bytes()[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def test_a_move_done_before_queueing_it_returns_does_not_fail_the_pack(project: dict[str, Path], tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """BAT's copying thread may move a rewritten .blend as soon as it is queued, before BAT's own queue_move
    (which reads the file's size after queueing it) returns: a rare FileNotFoundError on a loaded machine
    (once in about 8 CI runs). The packing thread is held here until the move is done, every time."""
    create = packing._Packer._create_file_transferer
    moved: list[Path] = []

    def held_after_queueing(self: packing._Packer) -> transfer.FileTransferer:
        transferer = create(self)
        put, packing_thread = transferer.queue.put, threading.current_thread()

        def put_then_wait(item: transfer.QueueItem, *args: Any, **kwargs: Any) -> None:
            put(item, *args, **kwargs)
            src, _dst, action = item
            if threading.current_thread() is packing_thread and action is transfer.Action.MOVE:
                deadline = time.monotonic() + 30
                while src.exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
                moved.append(src)

        monkeypatch.setattr(transferer.queue, "put", put_then_wait)
        return transferer

    monkeypatch.setattr(packing._Packer, "_create_file_transferer", held_after_queueing)
    result = pack_all(project["blend"], tmp_path / "pack")

    assert set(result.files) == TREE
    assert sorted(path.name.rpartition("-")[2] for path in moved) == ["shot.blend", "sphere.blend"], moved
    assert not any(path.exists() for path in moved)
    assert transferers() == []


@pytest.mark.parametrize("step", ["reading sphere.blend", "rewriting the paths in shot.blend",
                                  "copying assets/textures/checker.png"])
def test_abort_stops_packing_and_removes_the_partial_tree(project: dict[str, Path], tmp_path: Path,
                                                          step: str) -> None:
    before = snapshot(project["root"])
    abort = threading.Event()
    seen: list[str] = []

    def progress(text: str) -> None:
        seen.append(text)
        if text == step:
            abort.set()

    with pytest.raises(packing.PackAborted):
        pack_all(project["blend"], tmp_path / "pack", progress=progress, abort=abort)

    assert step in seen
    assert seen[-1] == "packing stopped: packing cancelled"
    assert not (tmp_path / "pack").exists()
    assert transferers() == []
    assert snapshot(project["root"]) == before


def test_abort_from_another_thread_keeps_an_existing_target_folder_empty(project: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    target = tmp_path / "pack"
    target.mkdir()
    abort, reached, resume = threading.Event(), threading.Event(), threading.Event()
    outcome: list[BaseException | packing.Pack] = []

    def progress(text: str) -> None:
        if text.startswith("copying") and not reached.is_set():
            reached.set()  # BAT's copying thread is running now
            assert resume.wait(60)

    def run() -> None:
        try:
            outcome.append(pack_all(project["blend"], target, progress=progress, abort=abort))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert reached.wait(60)
    abort.set()
    resume.set()
    worker.join(60)

    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], packing.PackAborted), outcome
    assert target.is_dir() and list(target.iterdir()) == []
    assert transferers() == []


def test_an_abort_set_before_packing_writes_nothing(project: dict[str, Path], tmp_path: Path) -> None:
    abort = threading.Event()
    abort.set()
    with pytest.raises(packing.PackAborted):
        pack_all(project["blend"], tmp_path / "pack", abort=abort)
    assert not (tmp_path / "pack").exists()


def test_a_dependency_folder_holding_the_target_is_refused(project: dict[str, Path]) -> None:
    """The cloth's external cache is a whole folder; packing into it would copy the pack into itself."""
    before = snapshot(project["root"])
    target = project["cache"] / "packed"

    with pytest.raises(packing.PackError, match="holds the pack's own folder"):
        pack_all(project["blend"], target)

    assert not target.exists()
    assert snapshot(project["root"]) == before


def test_a_target_with_files_in_it_is_refused(project: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "pack"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    with pytest.raises(packing.PackError, match="must be new or empty"):
        packing.pack(project["blend"], target)

    assert [p.name for p in target.iterdir()] == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------- files from outside the .blend's folder


def test_files_from_outside_the_blends_folder_are_listed_and_nothing_is_copied(project: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    before = snapshot(project["root"])
    steps: list[str] = []

    with pytest.raises(packing.NeedsConfirmation) as refused:
        packing.pack(project["blend"], tmp_path / "pack", progress=steps.append)

    assert refused.value.outside == outside_files(project)  # the texture, the library, its texture, the cache
    assert refused.value.missing == [str(project["missing"])]
    assert refused.value.project == project["blend"].parent
    message = str(refused.value)
    assert message.startswith(f"6 file(s) the scene uses are outside the .blend's folder {project['blend'].parent} "
                              f"and would be uploaded with it: {refused.value.outside[0]}, "), message
    assert f"; 1 file(s) the scene uses could not be found: {project['missing']}." in message
    assert not (tmp_path / "pack").exists(), "refused before anything was copied"
    assert not [step for step in steps if step.startswith(("copying", "rewriting"))], steps
    assert snapshot(project["root"]) == before


def test_only_the_approved_files_may_come_from_outside(project: dict[str, Path], tmp_path: Path) -> None:
    """What a confirmation dialog showed is what may go: a file the scene uses since is refused."""
    outside = outside_files(project)
    result = packing.pack(project["blend"], tmp_path / "pack", allow_outside=frozenset(outside), allow_missing=True)
    assert result.outside == outside and set(result.files) == TREE

    texture = str(project["texture"].resolve())
    with pytest.raises(packing.NeedsConfirmation) as refused:
        packing.pack(project["blend"], tmp_path / "fewer", allow_outside=[p for p in outside if p != texture],
                     allow_missing=True)
    assert (refused.value.outside, refused.value.missing) == ([texture], [])
    assert not (tmp_path / "fewer").exists()


def test_a_project_folder_holding_every_file_needs_no_confirmation(project: dict[str, Path], tmp_path: Path) -> None:
    result = packing.pack(project["blend"], tmp_path / "pack", project=project["root"], allow_missing=True)
    assert result.outside == [] and set(result.files) == TREE


def test_a_link_inside_the_folder_to_a_secret_is_listed_where_it_leads(project: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """A hostile .blend names a file inside its folder that is a symbolic link to the artist's SSH key."""
    copy = tmp_path / "copy"
    shutil.copytree(project["root"], copy, symlinks=True)
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (copy / "project" / "shots" / "textures" / "gone.png").symlink_to(secret)  # //textures/gone.png

    with pytest.raises(packing.NeedsConfirmation) as refused:
        packing.pack(copy / "project" / "shots" / "shot.blend", tmp_path / "pack", project=copy)

    # The copy's absolute paths (the checker, the cache) still lead to the original project: outside too.
    absolute = [str(project["texture"].resolve()), *(str(p.resolve()) for p in project["cache"].iterdir())]
    assert (refused.value.outside, refused.value.missing) == (sorted([str(secret.resolve()), *absolute]), [])
    assert str(secret.resolve()) in str(refused.value)
    assert not (tmp_path / "pack").exists()


def test_copying_a_file_that_was_not_checked_stops_the_pack(project: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net under the check: were the list of files to check ever to miss one that BAT copies, the
    pack stops instead of copying it unchecked. (The miss is simulated: the list is made empty.)"""
    monkeypatch.setattr(packing._Packer, "sources", lambda self: set())

    with pytest.raises(packing.PackError, match="was about to be copied without having been checked"):
        pack_all(project["blend"], tmp_path / "pack")

    assert not (tmp_path / "pack").exists() and transferers() == []


def test_not_a_blend_file_is_a_pack_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.blend"
    fake.write_bytes(b"not a blend file at all")
    with pytest.raises(packing.PackError, match="could not read a .blend file"):
        packing.pack(fake, tmp_path / "pack")
    assert not (tmp_path / "pack").exists()
    with pytest.raises(packing.PackError, match="is not a file"):
        packing.pack(tmp_path / "nowhere.blend", tmp_path / "pack")


def render(blend: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(ASSET_PROJECT), "render", str(blend), str(out)],
                          capture_output=True, text=True, timeout=120, cwd=out.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RENDERED ")]
    assert done.returncode == 0 and lines and out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[0][len("RENDERED "):])


def test_the_packed_tree_renders_with_its_textures_from_anywhere(tmp_path: Path) -> None:
    """Blender renders the tree from another folder with the original project gone: the floor shows the
    checker (green, blue) and the linked sphere its stripes (red, white); without the checker the floor is
    magenta, Blender's colour for a missing image."""
    original = build_asset_project(tmp_path / "artist")
    result = pack_all(original["blend"], tmp_path / "pack")
    shutil.rmtree(tmp_path / "artist")
    elsewhere = tmp_path / "worker" / "job 7"
    shutil.copytree(result.root, elsewhere)

    seen = render(elsewhere / result.main, tmp_path / "with.png")

    for name in ("checker.png", "stripes.png"):
        assert seen["images"][name]["found"], seen
        assert Path(seen["images"][name]["path"]).is_relative_to(elsewhere), seen
    assert seen["libraries"]["sphere.blend"] == {"path": str(elsewhere / "assets/project/lib/sphere.blend"),
                                                 "found": True}
    assert "Sphere" in seen["objects"]
    assert colours(tmp_path / "with.png") == {GREEN, BLUE, RED, WHITE}

    (elsewhere / "assets" / "textures" / "checker.png").unlink()
    render(elsewhere / result.main, tmp_path / "without.png")
    assert colours(tmp_path / "without.png") == {MAGENTA, RED, WHITE}
