"""The render confinement itself, tested with a probe (plain Python, not Blender) started exactly as the render
runner is: ``confinement.confine`` builds the policy and the command, ``confined_exec.py`` applies it; then
through real Blender, with a scene whose texture points at the owner's canary picture.

The first test of each pair is the attack without confinement (Landlock switched off): the probe reads the
owner's canary, writes outside its folders, connects to a loopback listener and signals the agent; Blender puts
the canary into the frame. The next one runs the same confined and watches each of those fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from framehive.worker_agent import confinement
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess
from framehive.worker_agent.confinement import RenderFolders, confine, scrubbed_environment
from framehive.worker_agent.task_runner import TaskRunner
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("confinement_probe.py")
TOKEN = "fhw_probe-must-never-see-this"
SECRET = "the owner's private key"
TIMEOUT = 30.0


@dataclass
class Site:
    """A scene tree, the owner's canary beside it, a render's private folders and two listeners."""

    tree_file: Path
    secret: Path
    outside: Path
    folders: RenderFolders
    port: int
    abstract: str

    def probe_args(self) -> dict:
        return {"tree_file": str(self.tree_file), "secret": str(self.secret),
                "output_file": str(self.folders.output / "frame.png"), "outside_file": str(self.outside),
                "port": self.port, "abstract": self.abstract, "parent": os.getpid(), "program": "/bin/true"}


@pytest.fixture
def probe_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("FRAMEHIVE_TOKEN", TOKEN)  # the agent's own environment holds the token
    monkeypatch.setenv("FRAMEHIVE_COORDINATOR", "http://coordinator.invalid")
    tree = tmp_path / "trees" / "job1"
    tree.mkdir(parents=True)
    (tree / "scene.txt").write_text("inside the tree")
    (tmp_path / "secret").mkdir()
    secret = tmp_path / "secret" / "id_rsa"
    secret.write_text(SECRET)
    folders = RenderFolders.create(tmp_path / "work")
    abstract = f"framehive-probe-{os.getpid()}"
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix_listener:
        unix_listener.bind("\0" + abstract)
        unix_listener.listen()
        yield Site(tree / "scene.txt", secret, tmp_path / "outside.txt", folders, listener.getsockname()[1],
                   abstract)
    folders.remove()


def run_probe(probe_site: Site, extra_env: dict[str, str] | None = None) -> dict:
    """The probe, started the way RenderProcess starts Blender."""
    command = confine([sys.executable, "-P", str(PROBE)], probe_site.folders, probe_site.tree_file.parent)
    argv = command.argv[:]
    argv.append(json.dumps(probe_site.probe_args()))
    done = subprocess.run(argv, env={**command.env, **(extra_env or {})}, cwd=command.cwd, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def failed(result: dict, errno_name: str) -> bool:
    return result == {"ok": False, "errno": errno_name}


def test_unconfined_the_probe_reads_writes_and_connects_anywhere(probe_site, monkeypatch):
    monkeypatch.setenv(confinement.OVERRIDE_VARIABLE, "off")
    status = confinement.status()
    assert status["available"] is False and status["abi"] == 0
    assert "FRAMEHIVE_LANDLOCK=off" in status["reason"]
    assert confinement.describe().startswith("render confinement: NONE (switched off by FRAMEHIVE_LANDLOCK=off)")

    result = run_probe(probe_site)

    assert result["read_secret"] == {"ok": True, "value": SECRET}  # the attack works without Landlock
    assert result["list_secret_folder"]["ok"] and result["write_tree"]["ok"]
    assert result["write_outside"]["ok"] and probe_site.outside.read_text() == "written by the probe"
    assert result["connect_tcp"] == {"ok": True, "value": "connected"}
    assert result["bind_tcp"]["ok"] and result["connect_abstract"]["ok"] and result["signal_parent"]["ok"]
    assert result["run_program"] == {"ok": True, "value": 0}
    # The environment is scrubbed even so.
    assert not [name for name in result["environment"] if name.startswith("FRAMEHIVE")]


def test_confined_the_probe_reads_only_its_tree_and_writes_only_its_folders(probe_site):
    assert confinement.status()["abi"] >= 6  # this machine: Linux 6.18, ABI 7

    result = run_probe(probe_site)

    assert result["read_tree"] == {"ok": True, "value": "inside the tree"}
    assert result["write_output"]["ok"] and (probe_site.folders.output / "frame.png").is_file()
    assert result["write_temp"]["ok"]
    assert failed(result["read_secret"], "EACCES")
    assert failed(result["list_secret_folder"], "EACCES")
    assert failed(result["write_outside"], "EACCES") and not probe_site.outside.exists()
    assert failed(result["write_tree"], "EACCES")
    assert failed(result["connect_tcp"], "EACCES")  # ABI 4: no TCP connect, even to loopback
    assert failed(result["bind_tcp"], "EACCES")
    assert failed(result["connect_abstract"], "EPERM")  # ABI 6: abstract unix sockets of other domains
    assert failed(result["signal_parent"], "EPERM")  # ABI 6: no signal to the agent
    assert failed(result["run_program"], "EACCES")  # nothing but the program itself runs
    assert probe_site.secret.read_text() == SECRET


def test_confined_environment_holds_no_token_and_a_private_home(probe_site, monkeypatch):
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "owner's cloud key")
    # Even if the token reached the wrapper's own environment, the program would not get it.
    result = run_probe(probe_site, extra_env={"FRAMEHIVE_TOKEN": TOKEN, "PYTHONPATH": "/somewhere"})

    env = result["environment"]
    assert TOKEN not in json.dumps(result)
    assert not [name for name in env if name.startswith("FRAMEHIVE") or name.startswith("AWS")]
    assert "PYTHONPATH" not in env
    assert env["HOME"] == str(probe_site.folders.home) and env["TMPDIR"] == str(probe_site.folders.temp)
    assert env["LC_ALL"] == "C.UTF-8" and env["CUDA_VISIBLE_DEVICES"] == "1" and env["PATH"] == os.environ["PATH"]
    assert result["cwd"] == str(probe_site.folders.temp)


def test_status_and_description_name_what_is_confined():
    status = confinement.status()
    assert status == {"available": True, "mechanism": "landlock", "abi": confinement.abi_version(),
                      "filesystem": True, "network": True, "scopes": ["abstract_unix_socket", "signal"],
                      "device_ioctl": True, "environment": "scrubbed", "reason": None}
    json.dumps(status)
    line = confinement.describe()
    assert line.startswith(f"render confinement: Landlock ABI {status['abi']}: reads limited to the scene's tree")
    assert "no TCP connect or bind" in line and "signals scoped" in line and "\n" not in line


def test_the_allow_list_keeps_locale_and_gpu_variables_only():
    env = scrubbed_environment({"PATH": "/usr/bin", "LANG": "C", "LC_CTYPE": "C", "TZ": "UTC",
                                "CUDA_VISIBLE_DEVICES": "0", "HIP_VISIBLE_DEVICES": "0", "FRAMEHIVE_TOKEN": TOKEN,
                                "HOME": "/root", "TMPDIR": "/tmp", "SSH_AUTH_SOCK": "/run/agent", "DISPLAY": ":0",
                                "XDG_RUNTIME_DIR": "/run/user/0", "http_proxy": "http://proxy", "PYTHONHOME": "/x",
                                "BLENDER_USER_SCRIPTS": "/home/owner/scripts"},
                               home="/private/home", temp="/private")
    assert env == {"PATH": "/usr/bin", "LANG": "C", "LC_CTYPE": "C", "TZ": "UTC", "CUDA_VISIBLE_DEVICES": "0",
                   "HIP_VISIBLE_DEVICES": "0", "HOME": "/private/home", "USERPROFILE": "/private/home",
                   "APPDATA": "/private/home", "LOCALAPPDATA": "/private/home", "TMPDIR": "/private",
                   "TMP": "/private", "TEMP": "/private"}


def test_the_wrapper_refuses_to_run_a_program_it_cannot_confine(probe_site, tmp_path):
    marker = tmp_path / "ran"
    command = confine([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], probe_site.folders,
                      probe_site.tree_file.parent)
    policy_index = command.argv.index("--") - 1
    broken = command.argv[:]
    broken[policy_index] = broken[policy_index].replace('"read":[', '"read":5,"x":[')  # not a policy
    done = subprocess.run(broken, env=command.env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 125
    assert "cannot confine the render process, not starting it" in done.stderr
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- through Blender


@pytest.fixture
def peeking(tmp_path: Path) -> dict[str, Path]:
    """tests/scenes/peeking.py's scene: its tree, the canary (pure green) it reads outside the tree and the
    owner's folder its fluid domain writes to (emptied: generating the scene wrote into it)."""
    paths = {"tree": tmp_path / "trees" / "job7", "canary": tmp_path / "owner" / "private.png",
             "fluid": tmp_path / "owner" / "fluid", "out": tmp_path / "out", "work": tmp_path / "work"}
    subprocess.run([sys.executable, str(REPO / "tests" / "scenes" / "peeking.py"), str(paths["tree"]),
                    str(paths["canary"]), str(paths["fluid"])], check=True, capture_output=True, timeout=120)
    shutil.rmtree(paths["fluid"])
    paths["out"].mkdir()
    return paths


def render_peeking(paths: dict[str, Path]) -> tuple[np.ndarray, list[str]]:
    """Frame 1 of the peeking scene by a RenderProcess that may read the scene's tree; its pixels, and the files
    its private folders held while it was open."""
    async def body() -> list[str]:
        process = RenderProcess(BlenderLauncher.discover(None), scene_tree=paths["tree"], work_root=paths["work"])
        async with process:
            await process.open(paths["tree"] / "peek.blend")
            await process.render(1, paths["out"] / "0001.png")
            return sorted(str(p.relative_to(process.folders.root)) for p in process.folders.root.rglob("*"))

    private = asyncio.run(asyncio.wait_for(body(), TIMEOUT))
    with Image.open(paths["out"] / "0001.png") as image:
        return np.asarray(image.convert("RGB")).astype(int), private


def green(pixels: np.ndarray) -> np.ndarray:
    """Where the canary shows: green well above red and blue (the missing-image magenta is the opposite)."""
    red, grn, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return (grn > red + 60) & (grn > blue + 60)


def files_under(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_unconfined_blender_renders_the_owners_picture_into_the_frame(peeking, monkeypatch):
    monkeypatch.setenv(confinement.OVERRIDE_VARIABLE, "off")
    pixels, _private = render_peeking(peeking)
    assert green(pixels).mean() > 0.9  # the attack of issue 11: the owner's picture fills the frame
    assert (peeking["fluid"] / "config" / "config_0001.uni").is_file()  # written into the owner's folder


def test_confined_blender_cannot_read_outside_its_tree_nor_write_outside_its_folders(peeking, tmp_path):
    before = files_under(tmp_path)

    pixels, private = render_peeking(peeking)

    assert not green(pixels).any()  # magenta: Blender could not open the canary
    assert not peeking["fluid"].exists()  # the fluid domain could not write its cache folder
    after = files_under(tmp_path)
    assert set(after) - set(before) == {"out/0001.png"}  # the delivered frame, nothing else anywhere
    assert {name: after[name] for name in before} == before  # tree and canary untouched
    # Blender's own files went to its private temp folder and HOME, which are gone now that it closed.
    assert "temp/home" in private and any(name.startswith("temp/blender_") for name in private)
    assert list(peeking["work"].iterdir()) == []


def test_the_private_folders_of_a_killed_agent_are_removed_when_the_next_one_starts(tmp_path):
    work = tmp_path / "cache" / "frames"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a pid that has exited
    left = work / f"{confinement.FOLDER_PREFIX}{gone}-x1b2"
    (left / "temp" / "home").mkdir(parents=True)
    (left / "output" / "000001.png").parent.mkdir()
    (left / "output" / "000001.png").write_bytes(b"half a frame")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        try:
            alive = work / f"{confinement.FOLDER_PREFIX}{running.pid}-c3d4"  # another agent on the same cache
            alive.mkdir()
            own = RenderFolders.create(work)

            TaskRunner(BlenderLauncher.discover(None), "CPU", 1, tmp_path / "cache", "http://127.0.0.1:9",
                       requests.Session())

            assert sorted(work.iterdir()) == sorted([alive, own.root])
        finally:
            running.kill()
