"""Pack a .blend and every file it uses (image textures, linked libraries, caches) into a folder tree to upload.

No ``bpy`` here: blender-asset-tracer (BAT 1.23) reads and rewrites .blend files in pure Python, zstd-compressed
Blender 5 files included. The add-on calls :func:`pack` on a saved copy of the open file, the ``framehive``
command line on the artist's .blend itself; neither file, nor any file it uses, is ever written to.

The tree, under ``target``::

    shot.blend                      the scene, at the top whatever folder it came from
    assets/textures/checker.png     every dependency, below the deepest folder all of them share
    assets/project/lib/sphere.blend     (libraries are rewritten too, so their own textures follow them)

Every packed .blend refers to the files it uses by ``//``-relative paths inside the tree, so the tree renders
wherever it is unpacked. Where the files were on the artist's disk shows only below that shared folder.
BAT's own layout does not do for uploads: it keeps relative paths that point into its project folder and puts
anything else under ``_outside_project/`` followed by the file's whole absolute path (``/home/<user>/...``),
absolute paths inside the project folder included.

A .blend can name any file on the disk as an image, a library or a cache: a hostile one pointing an image at
``~/.ssh/id_rsa`` would have the key uploaded with the scene. So nothing from outside the project folder (by
default the .blend's own folder; symbolic links count where they lead) is copied unless the caller allows it,
and neither is a scene with missing files: after tracing, before copying anything, :func:`pack` raises
:class:`NeedsConfirmation` listing what the artist must see and approve.

What BAT 1.23 gets wrong and this module works around (measured on bpy 5.0.1 files):

- It does not follow a linked material's node tree in Blender 5.0 files (it looks for the scene-only
  ``compositing_node_group`` field on every ID), so the textures of linked materials were silently left out.
  :func:`_expand_nodetree_id` replaces that expander at import.
- It gzips the .blend files it rewrites with the temporary file's name and the time in the gzip header, so
  each pack had different bytes. Those headers are blanked (:func:`_blank_gzip_header`): the coordinator
  stores blobs by sha256, and packing the same scene twice must upload nothing new.
- Its ``queue_move`` reads the size of a rewritten .blend after queueing it, when its copying thread may have
  moved it already: a rare ``FileNotFoundError`` on a busy machine. :class:`_FileCopier` reads it first.
- Its copying thread notices the end of the queue only after a 0.5 s wait on the empty queue, and the packing
  thread notices the copying thread's end only after 0.5 s without progress: every pack took a second longer than
  its work (1.1 s for a single 100 kB .blend). :class:`_FileCopier` looks every 20 ms.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from blender_asset_tracer import blendfile, bpathlib
from blender_asset_tracer import pack as bat_pack
from blender_asset_tracer.blendfile import exceptions as bat_exceptions
from blender_asset_tracer.pack import filesystem as bat_filesystem
from blender_asset_tracer.pack import progress as bat_progress
from blender_asset_tracer.pack import transfer as bat_transfer
from blender_asset_tracer.trace import expanders, result

log = logging.getLogger(__name__)

DEPS_DIR = "assets"  # every dependency lands below this folder of the tree
SHOWN = 8  # messages name this many files of a list, and count the rest

Progress = Callable[[str], None]
Approval = bool | Collection[str]  # True: any file; a collection: exactly these (real paths), e.g. those shown


class PackError(Exception):
    """The scene could not be packed (unreadable .blend, unsafe paths, a file that could not be copied)."""


class PackAborted(PackError):
    """``abort`` was set: packing stopped and the partial tree was removed."""


class NeedsConfirmation(PackError):
    """The scene uses files from outside the project folder, or files that are missing, and the caller did not
    allow them. Raised after tracing and before anything is copied; the lists are sorted."""

    def __init__(self, project: Path, outside: list[str], missing: list[str]) -> None:
        self.project = project
        self.outside = outside  # real paths of the files that would be uploaded from outside ``project``
        self.missing = missing  # missing dependencies (absolute paths; see _Packer.missing)
        super().__init__(self.describe())

    def describe(self, shown: int = SHOWN) -> str:
        """Both problems in words for the artist (what to do about them is the caller's to say)."""
        parts = []
        if self.outside:
            parts.append(f"{len(self.outside)} file(s) the scene uses are outside the .blend's folder "
                         f"{self.project} and would be uploaded with it: {name_files(self.outside, shown)}")
        if self.missing:
            parts.append(f"{len(self.missing)} file(s) the scene uses could not be found: "
                         f"{name_files(self.missing, shown)}. Blender renders missing images magenta and leaves "
                         "out what missing libraries hold (File > External Data > Report Missing Files lists them)")
        return "; ".join(parts)


@dataclass(frozen=True)
class Pack:
    """A packed scene: a folder tree holding the main .blend and every file it uses that exists."""

    root: Path  # the target folder
    main: str  # the main .blend, relative POSIX path inside ``root``
    files: dict[str, Path]  # every file of the tree (``main`` included), by relative POSIX path
    missing: list[str]  # dependencies that do not exist (absolute paths, see _Packer.missing); sorted
    size: int  # bytes of all files
    outside: list[str] = field(default_factory=list)  # real paths of the (allowed) files from outside the project


def name_files(files: list[str], shown: int = SHOWN) -> str:
    """The first ``shown`` of ``files``, and how many more there are."""
    more = f" and {len(files) - shown} more" if len(files) > shown else ""
    return ", ".join(files[:shown]) + more


def pack(blend: Path, target: Path, *, project: Path | None = None, allow_outside: Approval = False,
         allow_missing: bool = False, progress: Progress | None = None,
         abort: threading.Event | None = None) -> Pack:
    """Pack ``blend`` and every file it uses into ``target``, a folder that must be new or empty.

    Files outside ``project`` (default: the .blend's folder) are packed only if ``allow_outside`` says so:
    True for any, or a collection of the real paths allowed (exactly those a :class:`NeedsConfirmation`
    listed and the artist approved: a file the scene started using since is refused). Missing files are
    listed in :attr:`Pack.missing` if ``allow_missing``; otherwise, like unapproved outside files, they
    raise :class:`NeedsConfirmation` before anything is copied.

    ``progress`` gets short human-readable steps (called in this thread). Setting ``abort`` from any thread
    stops packing at BAT's next step (a file being copied is finished first), removes what was written and
    raises :class:`PackAborted`. Raises :class:`PackError` when the scene cannot be packed; ``target`` is then
    left as it was found. Packs run one at a time (BAT keeps global state).
    """
    blend = bpathlib.make_absolute(Path(blend))
    target = bpathlib.make_absolute(Path(target))
    project = bpathlib.make_absolute(Path(project)) if project is not None else blend.parent
    if not blend.is_file():
        raise PackError(f"{blend} is not a file")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PackError(f"the pack's folder {target} must be new or empty")
    if abort is not None and abort.is_set():
        raise PackAborted("packing cancelled")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    gate = _Gate(project, allow_outside, allow_missing)
    try:
        with _LOCK:
            return _pack(blend, target, gate, progress, abort)
    except BaseException:
        _clear(target, remove=created)
        raise


@dataclass(frozen=True)
class _Gate:
    """What may be packed without the artist's confirmation, and what they confirmed."""

    project: Path
    allow_outside: Approval
    allow_missing: bool

    def outside(self, sources: set[Path]) -> list[str]:
        """Real paths of ``sources`` outside the project folder, sorted."""
        project = self.project.resolve()
        return sorted({str(real) for real in (path.resolve() for path in sources) if not real.is_relative_to(project)})

    def check(self, outside: list[str], missing: list[str]) -> None:
        """Raise NeedsConfirmation listing the files from outside and the missing ones that are not allowed."""
        if self.allow_outside is True:
            unapproved = []
        else:
            allowed = set() if self.allow_outside is False else set(self.allow_outside)
            unapproved = [path for path in outside if path not in allowed]
        unallowed = [] if self.allow_missing else missing
        if unapproved or unallowed:
            raise NeedsConfirmation(self.project, unapproved, unallowed)


_LOCK = threading.Lock()  # BAT caches open .blend files and its pointer mode in module globals


def _pack(blend: Path, target: Path, gate: _Gate, progress: Progress | None,
          abort: threading.Event | None) -> Pack:
    packer = _Packer(blend, target)
    packer.progress_cb = _Reporter(packer, progress, abort)
    strict = blendfile.BlendFile.strict_pointer_mode
    blendfile.set_strict_pointer_mode(False)  # a dangling pointer in the artist's file is skipped, not fatal
    try:
        packer.strategise()
        missing = packer.missing()  # before execute(): rewriting rebinds the .blend objects to temporary copies
        sources = packer.sources()
        outside = gate.outside(sources)
        gate.check(outside, missing)
        packer.copy_only(sources)
        packer.execute()
    except bat_pack.Aborted as exc:
        if abort is not None and abort.is_set():
            raise PackAborted("packing cancelled") from None
        raise PackError(f"copying the scene's files failed: {exc}") from None
    except bat_transfer.FileTransferError as exc:
        raise PackError(f"copying the scene's files failed: {exc}") from None
    except (bat_exceptions.BlendFileError, bat_exceptions.SegmentationFault, bat_exceptions.NoReaderImplemented,
            bat_exceptions.NoWriterImplemented) as exc:
        raise PackError(f"could not read a .blend file: {exc}") from None
    finally:
        packer.stop()
        packer.close()
        blendfile.close_all_cached()
        blendfile.set_strict_pointer_mode(strict)
    files = {}
    for path in sorted(target.rglob("*")):
        if path.is_file():
            if path.suffix.lower() == ".blend":
                _blank_gzip_header(path)
            files[path.relative_to(target).as_posix()] = path
    main = PurePath(packer.output_path).relative_to(target).as_posix()
    if main not in files:
        raise PackError(f"packing wrote no {main}")
    if abort is not None and abort.is_set():
        raise PackAborted("packing cancelled")
    size = sum(path.stat().st_size for path in files.values())
    say = f"packed {len(files)} files ({size / 1e6:.1f} MB)"
    if missing:
        say += f"; {len(missing)} missing"
    if progress is not None:
        progress(say)
    return Pack(root=target, main=main, files=files, missing=missing, size=size, outside=outside)


class _Packer(bat_pack.Packer):
    """BAT's packer with Framehive's layout and safety checks (overrides of BAT 1.23 internals).

    - Every reference is rewritten (``_path_in_project`` is always false), so each file may go wherever the
      layout puts it: the main .blend at the top, dependencies below :data:`DEPS_DIR` (``_find_new_paths``).
    - No dependency may lie inside the tree, nor be a folder that holds the tree.
    - Rewritten files are staged inside the target (BAT still decompresses the .blend files it reads into
      the system's temporary folder, and removes them); no ``pack-info.txt``.
    - Only files :meth:`sources` listed (and the caller checked) are copied: anything else BAT would copy
      stops the pack (``_send_to_target``), so the check cannot miss a file BAT's copying finds on its own.
    """

    def __init__(self, blend: Path, target: Path) -> None:
        super().__init__(blend, blend.parent, str(target))
        self._tmpdir.cleanup()
        self._tmpdir = tempfile.TemporaryDirectory(prefix=".framehive-rewrite-", dir=target)
        self._rewrite_in = Path(self._tmpdir.name)
        self._deps_dir = DEPS_DIR if blend.name.casefold() != DEPS_DIR else "_" + DEPS_DIR
        self._usages: dict[Path, list[result.BlockUsage]] = {}
        self._transferer: bat_transfer.FileTransferer | None = None
        self._copyable: set[Path] | None = None

    def missing(self) -> list[str]:
        """The missing dependencies, where Blender looks for them (absolute: a path relative to the add-on's
        temporary copy would mean nothing to the artist), with ``(in lib.blend)`` when a library uses them."""
        main = bpathlib.make_absolute(self.blendfile)
        found: set[str] = set()
        for path in self.missing_files:
            users = {bpathlib.make_absolute(Path(usage.block.bfile.filepath)) for usage in self._usages.get(path, [])}
            found.update(str(path) + ("" if user == main else f" (in {user.name})") for user in users or {main})
        return sorted(found)

    def sources(self) -> set[Path]:
        """Every file of the artist's that :meth:`execute` will read, as BAT 1.23's ``_copy_asset_and_deps``
        picks them: each asset that is a plain file, and the files of each sequence, folder or UDIM set. The
        main .blend is not one of them."""
        main = bpathlib.make_absolute(self.blendfile)
        found: set[Path] = set()
        for path, action in self._actions.items():
            if path == main or path in self.missing_files:
                continue
            if "*" not in str(path) and "<UDIM>" not in path.name and not path.is_dir():
                found.add(path)
            sequence = next((usage for usage in action.usages if usage.is_sequence), None)
            if sequence is not None:
                found.update(sequence.files())
        return found

    def copy_only(self, sources: set[Path]) -> None:
        """From now on, copying any file but ``sources`` and the main .blend stops the pack."""
        self._copyable = {*sources, bpathlib.make_absolute(self.blendfile)}

    def stop(self) -> None:
        """Wait for BAT's copying thread after an abort or error, so nothing writes while the tree is removed."""
        if self._transferer is not None and self._transferer.is_alive():
            self._transferer.abort_and_join()

    def _visit_asset(self, asset_path: Path, usage: result.BlockUsage) -> None:
        self._usages.setdefault(asset_path, []).append(usage)
        super()._visit_asset(asset_path, usage)
        self._place_missing(asset_path, usage)

    def _visit_sequence(self, asset_path: Path, usage: result.BlockUsage) -> None:
        self._usages.setdefault(asset_path, []).append(usage)
        super()._visit_sequence(asset_path, usage)
        self._place_missing(asset_path, usage)

    def _place_missing(self, asset_path: Path, usage: result.BlockUsage) -> None:
        """Give a missing file a place in the pack too (nothing is copied there), so that its rewritten path
        stays inside the tree: it renders magenta on a worker as it does here. BAT leaves its path as it was,
        which may lead anywhere from where the pack is unpacked, and the coordinator refuses any path that
        leaves the tree (framehive.protocol.blend_references)."""
        if asset_path not in self.missing_files or usage in self._actions[asset_path].usages:
            return
        action = self._actions[asset_path]
        action.usages.append(usage)
        action.path_action = bat_pack.PathAction.FIND_NEW_LOCATION
        self._new_location_paths.add(asset_path)

    def _path_in_project(self, path: Path) -> bool:
        return False

    def _find_new_paths(self) -> None:
        main = bpathlib.make_absolute(self.blendfile)
        deps = sorted(path for path in self._new_location_paths if path != main)
        self._check_safe(deps)
        try:
            base: Path | None = Path(os.path.commonpath([path.parent for path in deps])) if deps else None
        except ValueError:  # different drives (Windows): no folder holds them all
            base = None
        for path in self._new_location_paths:
            action = self._actions[path]
            if path == main:  # a library linking back to the scene itself
                action.new_path = self.output_path
                continue
            relative = path.relative_to(base) if base is not None else bpathlib.strip_root(path)
            action.new_path = Path(self._target_path, self._deps_dir, relative)

    def _check_safe(self, deps: list[Path]) -> None:
        tree = Path(self._target_path).resolve()
        for path in deps:
            pattern = "*" in path.name or "<UDIM>" in path.name  # a file sequence: its folder is read
            real = path.parent.resolve() if pattern else path.resolve()
            if real == tree or tree in real.parents:
                raise PackError(f"the scene uses {path}, which is inside the pack's own folder {tree}")
            if (pattern or real.is_dir()) and (tree == real or real in tree.parents):
                raise PackError(f"the scene uses the folder {path}, which holds the pack's own folder {tree}: "
                                "packing it would copy the pack into itself")

    def _send_to_target(self, asset_path: Path, target: PurePath, may_move: bool = False) -> None:
        # may_move: a rewritten copy this packer made itself, of a file that was checked.
        if asset_path in self.missing_files:
            return  # placed only for its rewritten path (_place_missing)
        if not may_move and self._copyable is not None and asset_path not in self._copyable:
            self.abort(f"{asset_path} was about to be copied without having been checked")
            return
        super()._send_to_target(asset_path, target, may_move)

    def _create_file_transferer(self) -> bat_transfer.FileTransferer:
        self._transferer = _FileCopier()  # what BAT makes when not compressing (self.compress is never set)
        return self._transferer

    def _write_info_file(self) -> None:
        pass  # BAT's pack-info.txt would be uploaded with the scene


class _FileCopier(bat_filesystem.FileCopier):
    """BAT 1.23's FileCopier, with each file's size read before the file is queued.

    BAT's ``queue_copy`` and ``queue_move`` put the file on the queue and then read its size (for progress
    reports only). Its copying thread may take a move from the queue and finish it in between, when the packing
    thread is held up (a loaded machine): the size of the rewritten .blend, moved away already, then raised
    FileNotFoundError in the packing thread (seen once in about 8 CI runs).
    """

    def queue_copy(self, src: Path, dst: PurePath) -> None:
        self._queue(src, dst, bat_transfer.Action.COPY)

    def queue_move(self, src: Path, dst: PurePath) -> None:
        self._queue(src, dst, bat_transfer.Action.MOVE)

    def _queue(self, src: Path, dst: PurePath, action: bat_transfer.Action) -> None:
        if src.is_dir():
            raise TypeError(f"only files can be copied or moved, not directories: {src}")
        assert not self.done.is_set(), "Queueing not allowed after done_and_join() was called"
        assert not self._abort.is_set(), "Queueing not allowed after abort_and_join() was called"
        if self.has_error:
            return
        size = src.stat().st_size  # before the copying thread can see the file
        self.queue.put((src, dst, action))
        self.total_queued_bytes += size

    def iter_queue(self) -> Iterator[bat_transfer.QueueItem]:
        """BAT's, looking at ``done`` and an abort every :data:`_POLL` seconds instead of every 0.5."""
        while not (self._abort.is_set() or self.has_error):
            try:
                item = self.queue.get(timeout=_POLL)
            except queue.Empty:
                if self.done.is_set():
                    return
                continue
            self.progress_cb.transfer_file(item[0], item[1])
            yield item

    def join(self, timeout: float | None = None) -> None:
        """Wait for the copying thread, passing on its progress reports every :data:`_POLL` seconds (BAT's
        waits until 0.5 s pass without a report, so it returns up to 0.5 s after the thread ended)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_alive() and (deadline is None or time.monotonic() < deadline):
            threading.Thread.join(self, _POLL)
            self.progress_cb.flush()  # the reports queued so far, without waiting for more
        self.progress_cb.flush()


_POLL = 0.02  # seconds: how often the copier's two waits look whether the copying is done


class _Reporter(bat_progress.Callback):
    """Turns BAT's progress calls into sentences, and ``abort`` into ``Packer.abort()``.

    BAT calls it in the packing thread (calls from its copying thread are queued and flushed there), before
    each of its own abort checks: setting ``abort`` from any thread takes effect at BAT's next step.
    """

    def __init__(self, packer: _Packer, say: Progress | None, abort: threading.Event | None) -> None:
        self.packer, self.say, self.abort = packer, say, abort
        self.target = Path(packer.target)

    def _report(self, text: str) -> None:
        if self.abort is not None and self.abort.is_set():
            self.packer.abort("packing cancelled")
        elif self.say is not None:
            self.say(text)

    def pack_start(self) -> None:
        self._report(f"finding the files {Path(self.packer.blendfile).name} uses")

    def trace_blendfile(self, filename: Path) -> None:
        self._report(f"reading {filename.name}")

    def trace_asset(self, filename: Path) -> None:
        self._report(f"found {filename.name}")

    def missing_file(self, filename: Path) -> None:
        self._report(f"missing: {filename}")

    def rewrite_blendfile(self, orig_filename: Path) -> None:
        self._report(f"rewriting the paths in {orig_filename.name}")

    def transfer_file(self, src: Path, dst: PurePath) -> None:
        try:
            name = PurePath(dst).relative_to(self.target).as_posix()
        except ValueError:
            name = PurePath(dst).name
        self._report(f"copying {name}")

    def pack_aborted(self, reason: str) -> None:
        if self.say is not None:
            self.say(f"packing stopped: {reason}" if reason else "packing stopped")


def _clear(target: Path, *, remove: bool) -> None:
    """Remove what packing wrote: the folder itself if packing created it, else its contents."""
    if remove:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


_GZIP_FTEXT, _GZIP_FHCRC, _GZIP_FEXTRA, _GZIP_FNAME, _GZIP_FCOMMENT = 1, 2, 4, 8, 16


def _blank_gzip_header(path: Path) -> None:
    """Drop the file name and time BAT's gzip writes into the header of a rewritten .blend (RFC 1952 §2.3).

    Only the header changes; the compressed data and the trailer's CRC and length stay as they are. Files that
    are not gzip (Blender's own zstd, or uncompressed) are left alone.
    """
    with path.open("rb") as source:
        head = source.read(10)
        if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
            return
        flags = head[3]
        if flags & ~0x1F:
            return  # reserved bits: not a header we understand
        if flags == 0 and head[4:8] == b"\0\0\0\0" and head[9] == 0xFF:
            return
        if flags & _GZIP_FEXTRA:
            source.read(int.from_bytes(source.read(2), "little"))
        for field in (_GZIP_FNAME, _GZIP_FCOMMENT):
            if flags & field:
                while source.read(1) not in (b"\0", b""):
                    pass
        if flags & _GZIP_FHCRC:
            source.read(2)
        staged = path.with_name(f".{path.name}.framehive-tmp")
        with staged.open("wb") as out:
            out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + head[8:9] + b"\xff")
            shutil.copyfileobj(source, out, 1 << 20)
    os.replace(staged, path)


def _expand_nodetree_id(block: blendfile.BlendFileBlock) -> Iterator[blendfile.BlendFileBlock]:
    """BAT 1.23's ``_expand_generic_nodetree_id``, fixed for Blender 5.0 files.

    BAT reads ``compositing_node_group`` from every block of a 5.0 file, but only scenes have it: materials,
    lights and worlds keep their embedded ``nodetree``. Follow whichever of the two fields the block has.
    """
    for name in (b"nodetree", b"compositing_node_group"):
        if block.dna_type.has_field(name):
            tree = block.get_pointer(name, None)
            if tree is not None:
                yield from expanders._expand_generic_nodetree(tree)


if b"compositing_node_group" in expanders._expand_generic_nodetree_id.__code__.co_consts:  # BAT 1.23's bug
    expanders._expand_generic_nodetree_id = _expand_nodetree_id
