"""Confine the render process with Landlock: what a render may read, write and reach, and the means to enforce it.

A scene comes from a stranger and Blender opens whatever files it names: an image texture at
``/home/owner/.ssh/id_rsa``, a fluid cache in ``/etc``. Landlock (Linux 5.13+, unprivileged) lets a process
give up access rights for itself and every program it runs afterwards, so the render process starts under
``confined_exec.py``, which restricts itself with the :class:`Policy` built here and then runs Blender:

- **read**: the job's scene tree, Blender's and Python's own files, system libraries and the few /etc, /proc
  and /sys paths Blender was measured to need (strace of a render with the bpy module, see ``SYSTEM_READ``);
- **execute**: only the program itself (the Python with bpy, or the ``blender`` binary);
- **write**: only the process's private output folder and its private temp folder (TMPDIR, and a HOME);
- **devices**: /dev/null and the random devices, and the GPU device nodes (read, write, ioctl);
- **network** (ABI 4+): no TCP connect or bind at all; **scopes** (ABI 6+): no abstract unix socket of
  another domain (X11, D-Bus), no signal to a process outside it (the agent).

Only rights the running kernel's ABI knows are handled; the ABI is read once at start. Where Landlock is not
available (macOS, Windows, an old or Landlock-less kernel, or ``FRAMEHIVE_LANDLOCK=off``), renders run
unconfined, and :func:`status` and :func:`describe` say so plainly; the environment is scrubbed everywhere.

This module is loaded by path inside ``confined_exec.py`` (before any third-party import is allowed), so it
uses the standard library only and imports nothing from Framehive.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------------- kernel ABI
# From the kernel's include/uapi/linux/landlock.h and Documentation/userspace-api/landlock.rst. The syscall
# numbers are the same on every architecture but alpha (syscalls added after 5.1 share one table).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
PR_SET_NO_NEW_PRIVS = 38
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2: link or rename across folders
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5: ioctl on device files
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

FS_RIGHTS_ABI_1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
# Rights a rule on a file (not a folder) may carry; the others only make sense beneath a folder.
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

READ = FS_READ_FILE | FS_READ_DIR
EXECUTE = FS_EXECUTE | FS_READ_FILE
# Everything a program needs in a folder of its own, but running what it wrote there, and making device
# nodes, sockets or fifos.
WRITE = (READ | FS_WRITE_FILE | FS_TRUNCATE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG
         | FS_MAKE_SYM | FS_REFER)
DEVICE = READ | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV

#: confined_exec.py's exit code when it cannot apply the policy (and so never starts the program).
EXIT_REFUSED = 125
#: Switches Landlock off for renders (tests use it for positive controls; owners could use it to debug).
OVERRIDE_VARIABLE = "FRAMEHIVE_LANDLOCK"

# ---------------------------------------------------------------------------------------------- what a render needs
# Measured with ``strace -f -e trace=%file`` on renders of the sample scene by the bpy 5.0.1 module (Linux 6.18,
# x86_64, glibc), unconfined and then confined: every path here but the last line's was opened. The dynamic
# loader needs the ld.so files; Python and Blender read the time zone; Blender reads /proc/meminfo, the CPU
# lists and the huge page settings to size its thread pools and memory; the oneAPI (SYCL) runtime that bpy
# loads even for the CPU aborts the process unless it can read /proc/self/maps; the bpy wheel's libraries come
# from /lib and /usr/lib, locales from /usr/lib/locale. Denied and harmless (measured: the frame is the same):
# /etc/passwd and /etc/nsswitch.conf (user name lookup), /etc/ssl/openssl.cnf, /etc/locale.alias, and running
# /bin/sh (Blender asks ``xdg-user-dir`` for a documents folder). Last line, not measured here but read by the
# same libraries elsewhere: NUMA nodes (TBB on multi-socket machines), /proc/cpuinfo, system fonts.
SYSTEM_READ = (
    "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/share/zoneinfo",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ld.so.preload", "/etc/localtime",
    "/proc/self", "/proc/meminfo", "/proc/sys/vm/nr_hugepages",
    "/sys/devices/system/cpu", "/sys/kernel/mm/transparent_hugepage",
    "/sys/devices/system/node", "/proc/cpuinfo", "/usr/share/fonts",
)
# GPU drivers, from their documentation (no GPU on the machine this was measured on, so not tested): NVIDIA
# (CUDA, OptiX) opens /dev/nvidia*, reads /proc/driver/nvidia, /proc/devices and the PCI tree; AMD (HIP) opens
# /dev/kfd and /dev/dri, reads the KFD topology and loads the runtime from /opt/rocm; Intel (oneAPI Level
# Zero) opens /dev/dri. /sys/class/drm and /sys/bus/pci entries are links into /sys/devices/pci*.
GPU_READ_PATTERNS = (
    "/proc/driver/nvidia", "/proc/devices", "/sys/bus/pci", "/sys/devices/pci*", "/sys/class/drm",
    "/sys/class/kfd", "/sys/devices/virtual/kfd", "/sys/module/nvidia", "/sys/module/amdgpu",
    "/etc/OpenCL/vendors", "/usr/share/glvnd", "/opt/rocm",
)
GPU_DEVICE_PATTERNS = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd")
PLAIN_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

# The environment a render sees: these names (and the prefixes below) from the agent's, never anything else
# (the worker token, the coordinator's address, the owner's proxies and credentials stay out). HOME, TMPDIR
# and friends point into the render's private temp folder instead.
ENV_NAMES = ("PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH",
             # Windows needs these for Python and drivers to start at all
             "SYSTEMROOT", "WINDIR", "PATHEXT", "NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE")
ENV_PREFIXES = ("LC_", "CUDA_", "OPTIX_", "HIP_", "ROCR_", "HSA_", "GPU_", "ONEAPI_", "SYCL_", "ZE_", "__NV_",
                "__GLX_")
PRIVATE_ENV = {"HOME": "home", "USERPROFILE": "home", "APPDATA": "home", "LOCALAPPDATA": "home",
               "TMPDIR": "tmp", "TMP": "tmp", "TEMP": "tmp"}


# ---------------------------------------------------------------------------------------------- status


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is off, or this is not Linux)."""
    version, _reason = _probe_abi()
    return version


def _probe_abi() -> tuple[int, str | None]:
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock is a Linux feature; this is {sys.platform}"
    if os.environ.get(OVERRIDE_VARIABLE, "").lower() in ("0", "off", "no", "false"):
        return 0, f"switched off by {OVERRIDE_VARIABLE}={os.environ[OVERRIDE_VARIABLE]}"
    try:
        result = _syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except OSError as exc:
        if exc.errno == 95:  # EOPNOTSUPP
            return 0, "the kernel has Landlock but it is disabled (add landlock to the lsm= boot parameter)"
        release = os.uname().release
        return 0, f"kernel {release} has no Landlock (needs Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK)"
    return result, None


def status() -> dict:
    """What confines a render on this machine, JSON-able: for the agent's start log and its hello."""
    abi, reason = _probe_abi()
    return {
        "available": abi > 0,
        "mechanism": "landlock" if abi > 0 else None,
        "abi": abi,
        "filesystem": abi > 0,
        "network": abi >= 4,
        "scopes": ["abstract_unix_socket", "signal"] if abi >= 6 else [],
        "device_ioctl": abi >= 5,
        "environment": "scrubbed",
        "reason": reason,
    }


def describe() -> str:
    """One line for the agent's start log: what a render may do here, or plainly that it is not confined."""
    info = status()
    if not info["available"]:
        return (f"render confinement: NONE ({info['reason']}): a scene can make Blender read and write any "
                "file this user can and reach the network; the environment is still scrubbed")
    parts = [f"render confinement: Landlock ABI {info['abi']}: reads limited to the scene's tree, Blender, Python "
             "and system files; writes to a private output and temp folder; no other program runs"]
    parts.append("no TCP connect or bind" if info["network"] else "network NOT confined (needs ABI 4, Linux 6.7+)")
    if info["scopes"]:
        parts.append("abstract unix sockets and signals scoped")
    else:
        parts.append("abstract unix sockets and signals NOT scoped (needs ABI 6, Linux 6.12+)")
    parts.append("environment scrubbed")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------- the policy


FOLDER_PREFIX = "framehive-render-"


@dataclass(frozen=True)
class RenderFolders:
    """A render process's private folders: ``output`` for its frames, ``temp`` (TMPDIR) holding ``home``."""

    root: Path
    output: Path
    temp: Path
    home: Path

    @classmethod
    def create(cls, parent: Path | None = None) -> RenderFolders:
        """Fresh folders under ``parent`` (default: the system's temp folder), readable by this user only."""
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        # The agent's pid in the name: remove_stale() knows whose folders were left behind by a killed agent.
        root = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-", dir=parent))
        folders = cls(root, root / "output", root / "temp", root / "temp" / "home")
        folders.output.mkdir(mode=0o700)
        folders.home.mkdir(mode=0o700, parents=True)
        return folders

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def remove_stale(parent: Path) -> list[Path]:
        """Remove the folders under ``parent`` of agents that are gone (killed before they could clean up);
        returns them. Folders of running agents, this one included, stay."""
        removed = []
        for root in parent.glob(f"{FOLDER_PREFIX}*-*"):
            pid = root.name[len(FOLDER_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
                shutil.rmtree(root, ignore_errors=True)
                removed.append(root)
        return removed


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (POSIX signal 0 only checks; elsewhere assume it does and keep its folders)."""
    if os.name != "posix":
        return True  # os.kill on Windows terminates the process, whatever the signal
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: not ours to judge
    return True


@dataclass(frozen=True)
class Policy:
    """What one render process may touch; JSON travels to ``confined_exec.py`` on its command line.

    ``landlock`` False: nothing is restricted but the environment and the limits (where Landlock is missing).
    """

    landlock: bool
    read: tuple[str, ...] = ()
    execute: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    home: str = ""
    temp: str = ""
    file_size: int | None = None  # RLIMIT_FSIZE: no file the process writes may grow beyond this
    abi: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        data = json.loads(text)
        for name in ("read", "execute", "write", "devices"):
            data[name] = tuple(data[name])
        return cls(**data)


def render_policy(argv: list[str], folders: RenderFolders, scene_tree: Path | None,
                  file_size: int | None = None) -> Policy:
    """The policy for a render runner started by ``argv`` (a launcher's), reading ``scene_tree``.

    ``scene_tree`` None: the scene's folder is not known when the process starts, so reads are not limited
    (writes, network and scopes still are). The task runner always passes the job's tree.
    """
    abi = abi_version()
    program = Path(argv[0]).resolve()
    python = Path(sys.executable).resolve()  # a blender "binary" may be a script that runs it (tests do)
    execute = [str(program), *_interpreter(program), str(python), *_interpreter(python)]
    read = [*_software_folders(program), *SYSTEM_READ, *_globbed(GPU_READ_PATTERNS)]
    read.append(str(scene_tree) if scene_tree is not None else "/")
    read.extend(str(Path(arg).resolve()) for arg in argv[1:] if arg.endswith(".py") and Path(arg).is_file())
    read.extend(p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if os.path.isabs(p))
    devices = [*PLAIN_DEVICES, *_globbed(GPU_DEVICE_PATTERNS)]
    return Policy(landlock=abi > 0, read=_existing(read), execute=_existing(execute),
                  write=(str(folders.output), str(folders.temp)), devices=_existing(devices),
                  home=str(folders.home), temp=str(folders.temp), file_size=file_size, abi=abi)


def _software_folders(program: Path) -> list[str]:
    """Python's own files and the bpy package (wherever it is installed); Blender's folder for a binary."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for name in ("bpy", "numpy"):  # bpy imports numpy
        location = _package_folder(name)
        if location is not None:
            folders.add(location)
    folders.add(str(program.parent))  # a blender binary's folder holds its libraries and 5.0/ data
    share = program.parent.parent / "share" / "blender"
    if share.is_dir():  # distribution packages: /usr/bin/blender with its data in /usr/share/blender
        folders.add(str(share))
    return sorted(folders)


def _package_folder(name: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))).resolve())


def _interpreter(program: Path) -> list[str]:
    """What the kernel runs along with ``program`` (and Landlock checks for the execute right): a script's
    ``#!`` interpreter, or an ELF program's dynamic loader (``/lib64/ld-linux-x86-64.so.2``), with theirs."""
    try:
        with open(program, "rb") as handle:
            head = handle.read(256)
            if head.startswith(b"#!"):
                words = head[2:].split(b"\n", 1)[0].split()
                found = os.fsdecode(words[0]) if words else None
            else:
                found = _elf_interpreter(handle, head)
    except (OSError, struct.error):
        return []
    if not found:
        return []
    interpreter = Path(found).resolve()
    return [str(interpreter)] if interpreter == program else [str(interpreter), *_interpreter(interpreter)]


def _elf_interpreter(handle, head: bytes) -> str | None:
    """The PT_INTERP path of an ELF file (None for a static program or anything that is not ELF)."""
    if len(head) < 64 or head[:4] != b"\x7fELF":
        return None
    wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
    if wide:
        phoff, = struct.unpack_from(order + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
    else:
        phoff, = struct.unpack_from(order + "I", head, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x2A)
    for index in range(min(phnum, 64)):
        handle.seek(phoff + index * phentsize)
        entry = handle.read(phentsize)
        kind, = struct.unpack_from(order + "I", entry, 0)
        if kind != 3:  # PT_INTERP
            continue
        # p_offset and p_filesz, with p_vaddr and p_paddr between them
        layout = ("Q16xQ", 8) if wide else ("I8xI", 4)
        offset, size = struct.unpack_from(order + layout[0], entry, layout[1])
        handle.seek(offset)
        return os.fsdecode(handle.read(min(size, 4096)).rstrip(b"\0"))
    return None


def _globbed(patterns: tuple[str, ...]) -> list[str]:
    return [path for pattern in patterns for path in sorted(glob.glob(pattern))]


def _existing(paths: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for path in paths:
        if path and os.path.exists(path):
            seen.setdefault(path)
    return tuple(seen)


def scrubbed_environment(environ: dict[str, str] | os._Environ, home: str, temp: str) -> dict[str, str]:
    """The allow-listed part of ``environ``, with HOME and TMPDIR (and their Windows names) made private."""
    env = {name: value for name, value in environ.items()
           if name.upper() in ENV_NAMES or name.upper().startswith(ENV_PREFIXES)}
    env.update({name: home if kind == "home" else temp for name, kind in PRIVATE_ENV.items()})
    return env


# ---------------------------------------------------------------------------------------------- enforcement


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(number: int, *args: object) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def handled_fs(abi: int) -> int:
    """Every filesystem right ``abi`` knows: all of them are denied unless a rule grants them."""
    rights = FS_RIGHTS_ABI_1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def restrict_self(policy: Policy) -> None:
    """Apply ``policy`` to this process (one thread: call it before starting any) and to all it runs later.

    Raises OSError if the kernel refuses; the caller must then not run the render at all.
    """
    abi = policy.abi
    handled = handled_fs(abi)
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct as this ABI knows it
    ruleset = _syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for paths, rights in ((policy.read, READ), (policy.execute, EXECUTE), (policy.write, WRITE),
                              (policy.devices, DEVICE)):
            for path in paths:
                _allow(ruleset, path, rights & handled)
        _no_new_privileges()  # required by restrict_self without CAP_SYS_ADMIN, and wanted anyway
        _syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


def _no_new_privileges() -> None:
    """No set-user-ID program, file capability or exec transition can give the process more than it has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(errno)}")


def _allow(ruleset: int, path: str, rights: int) -> None:
    """Grant ``rights`` beneath ``path``; a path that vanished since the policy was built is skipped.

    A rule holds the inode. procfs makes a new inode when it looks up an entry it has forgotten, which would
    silently drop the rule, so the descriptor of a /proc path stays open (O_PATH: it reads nothing) for the
    life of the process, which keeps the entry remembered. ``/proc/self`` is this process's own folder, and
    still is after the exec.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    keep = path == "/proc" or path.startswith("/proc/")
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS
        attr = _PathBeneathAttr(rights, fd)
        _syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                 ctypes.byref(attr), ctypes.c_uint32(0))
        if keep:
            os.set_inheritable(fd, True)
    finally:
        if not keep:
            os.close(fd)


# ---------------------------------------------------------------------------------------------- starting


CONFINED_EXEC = Path(__file__).resolve().with_name("confined_exec.py")


@dataclass(frozen=True)
class ConfinedCommand:
    """How to start a confined program: pass ``argv``, ``env`` and ``cwd`` to the subprocess call as they are."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    policy: Policy


def confine(argv: list[str], folders: RenderFolders, scene_tree: Path | None, file_size: int | None = None,
            environ: dict[str, str] | None = None) -> ConfinedCommand:
    """``argv`` (a render runner's command line) as a confined command: :func:`render_policy` applied by
    ``confined_exec.py`` (POSIX), with the allow-listed environment of ``environ`` (default: this process's).

    On Windows there is no wrapper: the program gets the scrubbed environment and the private folders only.
    ``-I -S``: the wrapper's Python ignores PYTHON* variables, the user's site folder and site-packages.
    """
    policy = render_policy(argv, folders, scene_tree, file_size)
    env = scrubbed_environment(os.environ if environ is None else environ, policy.home, policy.temp)
    if os.name == "posix":
        argv = [sys.executable, "-I", "-S", str(CONFINED_EXEC), policy.to_json(), "--", *argv]
    return ConfinedCommand(list(argv), env, policy.temp, policy)
