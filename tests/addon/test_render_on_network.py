"""``bpy.ops.framehive.render_on_network`` headless, as an artist's script would call it, against a real
coordinator and real workers.

The scene is the asset project (tests/scenes/asset_project.py): an image texture by absolute path outside the
.blend's folder, a linked library with a texture of its own, a point cache, a missing image. The operator lists
the six files from outside the folder (and the missing one) and submits nothing until they are allowed; then
the frames come back verified into the scene's output path, showing both textures and identical to a local
render, and the artist's files on disk are untouched. Error paths: coordinator down, bad token, not enough
points, a scene that names the artist's SSH key: a clear message and nothing half-submitted (or uploaded).

Blender runs in subprocesses (tests/addon/render_session.py) with a fresh user folder each, the extension
installed from the zip scripts/build-addon makes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from framehive.addon.client import Client

from tests.addon.sessions import run_session
from tests.farm import Farm, make_scene, reference_render
from tests.images import colours, same_pixels
from tests.live import free_port
from tests.scenes import build_asset_project, outside_files, snapshot

GREEN, BLUE, RED, WHITE = (0, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255)  # asset_project.py's colours


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def asset_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_asset_project(tmp_path_factory.mktemp("artist") / "studio")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain sample scene in a project folder of its own: it uses no other file."""
    return make_scene(tmp_path_factory.mktemp("project") / "shots" / "shot.blend")


def test_the_asset_project_comes_back_verified_into_the_output_path(farm: Farm, asset_project: dict[str, Path],
                                                                    extension_zip: Path, tmp_path: Path) -> None:
    artist = farm.token("user", "artist")
    farm.start_worker("gpu-1", farm.token("worker", "owner-1"))
    farm.start_worker("gpu-2", farm.token("worker", "owner-2"))
    blend, before, original = asset_project["blend"], snapshot(asset_project["root"]), sha256(asset_project["blend"])
    outside = outside_files(asset_project)
    # Two frames, a task each (in memory: the file on disk keeps its single frame).
    scene = {"url": farm.url, "token": artist, "frame_end": 2, "chunk": 1}
    steps = [
        scene,
        # The artist clicks Submit in a dialog that listed all but one of the files (as if the scene had started
        # using that one since): what the dialog showed goes, the missing image too, the other file does not.
        {**scene, "op": "confirm", "outside": outside[1:], "missing": [str(asset_project["missing"])]},
        {**scene, "approved_outside": outside, "allow_missing": True, "wait": True},
    ]

    refused, one_short, done = run_session(extension_zip, blend, steps, tmp_path)

    assert (refused["result"], refused["job_id"]) == (["CANCELLED"], 0), refused
    assert refused["error"].startswith(f"Framehive: 6 file(s) the scene uses are outside the .blend's folder "
                                       f"{blend.parent} and would be uploaded with it: {', '.join(outside)}; "
                                       f"1 file(s) the scene uses could not be found: {asset_project['missing']}."), \
        refused
    assert refused["error"].endswith("nothing was submitted. To submit anyway, call it with allow_outside=True and "
                                     "allow_missing=True"), refused
    assert (one_short["result"], one_short["job_id"]) == (["CANCELLED"], 0), one_short
    assert one_short["error"] == (f"Framehive: 1 file(s) the scene uses are outside the .blend's folder "
                                  f"{blend.parent} and would be uploaded with it: {outside[0]}; nothing was "
                                  "submitted. To submit anyway, call it with allow_outside=True"), one_short
    assert done["result"] == ["FINISHED"], done

    client = Client(farm.url, artist)
    assert [job["id"] for job in client.jobs()] == [done["job_id"]], "the refusals created nothing"
    job = client.job(done["job_id"])
    assert job["state"] == "completed"
    assert sorted(asset["path"] for asset in job["assets"]) == [
        "assets/caches/cloth/cloth_000001_00.bphys", "assets/caches/cloth/cloth_000002_00.bphys",
        "assets/caches/cloth/cloth_000003_00.bphys", "assets/project/lib/sphere.blend",
        "assets/shared assets/tëxtures ü/stripes.png", "assets/textures/checker.png"]
    frames = {int(k): Path(v) for k, v in done["paths"].items()}
    assert frames == {n: blend.parent / "render" / f"frame_{n:04d}.png" for n in (1, 2)}
    reference = reference_render(blend, sorted(frames), tmp_path / "reference")
    for n, path in frames.items():
        assert colours(path) == {GREEN, BLUE, RED, WHITE}, f"frame {n}: both textures, nothing magenta"
        assert same_pixels(path, reference[n]), f"frame {n} differs from a local render"
    assert sha256(blend) == original, "the artist's .blend on disk is byte-identical"
    after = snapshot(asset_project["root"])
    assert {name: after[name] for name in before} == before, "no file of the project changed"
    assert set(after) - set(before) == {f"project/shots/render/frame_{n:04d}.png" for n in (1, 2)}


def test_errors_are_clear_and_nothing_is_half_submitted(farm: Farm, project: Path, extension_zip: Path,
                                                         tmp_path: Path) -> None:
    """No workers here: every job stays queued, so the 'pauper' can park most of its points in escrow."""
    pauper = farm.token("user", "pauper")
    client = Client(farm.url, pauper)
    long_scene = make_scene(tmp_path / "long.blend", frames=72)
    client.submit(long_scene)  # 72 x 13 points held: 64 left, less than the 12-frame shot's 156
    balance = client.balance()["balance"]
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    steps = [
        {"url": f"http://127.0.0.1:{free_port()}", "token": pauper},
        {"url": farm.url, "token": "fhu_" + "0" * 40},
        {"url": farm.url, "token": pauper},
        {"url": farm.url, "token": pauper, "peek": str(secret)},  # the scene now names the artist's key
    ]

    down, bad_token, poor, peek = run_session(extension_zip, project, steps, tmp_path)

    assert "cannot reach" in down["error"] or "refused" in down["error"], down
    assert "token" in bad_token["error"] and "refused" in bad_token["error"], bad_token
    assert "not enough points" in poor["error"] and "156" in poor["error"] and str(balance) in poor["error"], poor
    assert peek["error"] == (f"Framehive: 1 file(s) the scene uses are outside the .blend's folder {project.parent} "
                             f"and would be uploaded with it: {secret.resolve()}; nothing was submitted. To submit "
                             "anyway, call it with allow_outside=True"), peek
    assert all(r["result"] == ["CANCELLED"] and r["job_id"] == 0 for r in (down, bad_token, poor, peek))
    assert len(client.jobs()) == 1 and client.balance()["balance"] == balance, "nothing was created or charged"
    assert client.missing_blobs([sha256(secret)]) == [sha256(secret)], "the key was not uploaded"
