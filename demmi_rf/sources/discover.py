"""Finding registered IR/VIS pairs under folders, and reading them.

:func:`discover` never raises for bad input: it returns every usable pair and a :class:`Problem` for each
file or folder it could not use (folders it cannot list or enter, symbolic links that do not resolve or loop,
names too long for the files the toolkit derives from them). :func:`read_pair` raises a specific
:class:`~demmi_rf.errors.PairError` subclass.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Literal

from ..errors import PairError, SizeMismatchError
from ..ids import safe_name
from . import layouts
from .images import DEFAULT_MAX_PIXELS, Ir16, check_max_pixels, is_image_file, read_ir, read_vis
from .records import LoadedPair, PairGroup, PairRecord, Problem, ScanResult

Check = Literal["full", "none"]

#: Longest file name (bytes) on the common file systems (ext4, XFS, APFS, NTFS in UTF-16 units).
NAME_MAX = 255
#: What an atomic write adds to a file name for its temporary file: ``.<name>.<pid>-<8 hex>.tmp`` with a pid of
#: up to 7 digits (:func:`demmi_rf.store.atomic.temp_path`).
ATOMIC_AFFIXES = 1 + 1 + 7 + 1 + 8 + len(".tmp")
#: Longest safe pair id (``<source>__<stem>``, ASCII bytes) accepted: the rest of :data:`NAME_MAX` is left for what
#: the toolkit appends to make file names: ``@<setting>`` (up to 64 characters), ``.png``, and the temporary-file
#: affixes of an atomic write (``.<name>.<pid>-<token>.tmp``, 22 characters).
MAX_PAIR_NAME = NAME_MAX - 64 - 1 - len(".png") - ATOMIC_AFFIXES


def read_pair(record: PairRecord, ir16: Ir16 = "error", max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedPair:
    """Decode and validate a pair; raise a :class:`~demmi_rf.errors.PairError` subclass naming the file.
    Either image declaring more than ``max_pixels`` pixels is refused before it is decoded."""
    ir = read_ir(record.ir_path, ir16=ir16, max_pixels=max_pixels)
    vis = read_vis(record.vis_path, max_pixels=max_pixels)
    if ir.shape[:2] != vis.shape[:2]:
        raise SizeMismatchError(
            record.vis_path,
            f"is {vis.shape[1]}x{vis.shape[0]} but its IR partner {record.ir_path} is "
            f"{ir.shape[1]}x{ir.shape[0]}; a registered pair must have identical sizes",
        )
    return LoadedPair(vis=vis, ir=ir, record=record)


def _os_problem(path: Path, exc: OSError, what: str) -> Problem:
    """A ``unreadable-folder`` problem for an OS error met while listing or entering ``path``."""
    why = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.ELOOP: "a symbolic link that loops", errno.ENOENT: "it vanished or is a broken symbolic link",
           errno.ENOTDIR: "not a folder"}.get(exc.errno or 0, exc.strerror or str(exc))
    return Problem(path, "unreadable-folder", f"{path}: cannot {what} ({why}); its images are skipped")


def _dangling_link(path: Path) -> bool:
    """True for a symbolic link that does not resolve (broken, or a loop)."""
    try:
        return path.is_symlink() and not path.exists()
    except OSError:
        return True


def find_groups(root: Path, problems: list[Problem] | None = None) -> list[PairGroup]:
    """Every IR/VIS sibling folder pair under ``root`` (``root`` itself included), in sorted order.

    Folders that cannot be listed and IR/VIS-named symbolic links that do not resolve are appended to
    ``problems`` (kind ``unreadable-folder``) when given; the walk goes on. Symbolic links to folders are not
    descended into (only followed when they are an IR or VIS folder themselves), so link loops end the walk.
    """
    groups: list[PairGroup] = []
    problems = problems if problems is not None else []

    def onerror(exc: OSError) -> None:
        problems.append(_os_problem(Path(exc.filename or root), exc, "list the folder"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        here = Path(dirpath)
        best: dict[str, tuple[int, str]] = {}
        for d in dirnames:
            role = layouts.folder_role(d)
            if role and (role[0] not in best or role[1] < best[role[0]][0]):
                best[role[0]] = (role[1], d)
        for f in sorted(filenames):  # an IR/VIS folder that is a link to nowhere (or a loop) is listed as a file
            role = layouts.folder_role(f)
            # reported when it would have been used: no other folder of its role, or a preferred name
            if role and (role[0] not in best or role[1] < best[role[0]][0]) and _dangling_link(here / f):
                problems.append(Problem(here / f, "unreadable-folder",
                                        f"{here / f}: is a symbolic link that does not resolve (broken, or a loop); "
                                        "its images are skipped"))
        if "ir" not in best or "vis" not in best:
            continue
        ir_name, vis_name = best["ir"][1], best["vis"][1]
        # don't descend into the modality folders themselves as if they held more layouts
        ir_dir, vis_dir = here / ir_name, here / vis_name
        try:
            split_children = sorted(
                d.name
                for d in ir_dir.iterdir()
                if d.is_dir() and layouts.split_of(d.name) and (vis_dir / d.name).is_dir()
            )
        except OSError as exc:
            problems.append(_os_problem(ir_dir, exc, "list the folder"))
            dirnames[:] = [d for d in dirnames if d not in (ir_name, vis_name)]
            continue
        source = _source_name(here, root)
        parent_split = _split_from_ancestors(here, root)
        if split_children:  # LLVIP: infrared/{train,test}
            layout = layouts.layout_name(ir_name, vis_name, True)
            for name in split_children:
                groups.append(PairGroup(source, layouts.split_of(name), layout, ir_dir / name, vis_dir / name))
        else:
            layout = layouts.layout_name(ir_name, vis_name, False)
            groups.append(PairGroup(source, parent_split, layout, ir_dir, vis_dir))
        dirnames[:] = [d for d in dirnames if d not in (ir_name, vis_name)]
    return groups


def _split_from_ancestors(folder: Path, root: Path) -> str | None:
    for part in _parts_between(folder, root):
        split = layouts.split_of(part)
        if split:
            return split
    return None


def _parts_between(folder: Path, root: Path) -> list[str]:
    """Folder names from ``folder`` up to ``root`` inclusive, nearest first."""
    names = [folder.name]
    p = folder
    while p != root and p.parent != p:
        p = p.parent
        names.append(p.name)
    return [n for n in names if n]


def _source_name(folder: Path, root: Path) -> str:
    parts = _parts_between(folder, root)
    for part in parts:
        known = layouts.known_source(part)
        if known:
            return known
    for part in parts:
        if not layouts.split_of(part):
            return layouts.sanitize_source(part)
    return layouts.sanitize_source(root.resolve().name)


def _index_folder(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    """stem -> image file of one folder; duplicate stems, non-ASCII names, image names that are links to nowhere
    and a folder that cannot be listed are problems."""
    by_stem: dict[str, list[Path]] = {}
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        problems.append(_os_problem(folder, exc, "list the folder"))
        return {}
    for entry in entries:
        if entry.name.startswith(".") or not is_image_file(entry.name):
            continue
        try:
            is_file = entry.is_file()
        except OSError as exc:  # e.g. ELOOP: a link loop
            problems.append(Problem(Path(entry.path), "unreadable",
                                    f"{entry.path}: cannot look at the file ({exc.strerror or exc}); skipped"))
            continue
        if not is_file:
            if entry.is_symlink():
                problems.append(Problem(Path(entry.path), "unreadable",
                                        f"{entry.path}: is a symbolic link that does not resolve (broken, or a loop)"))
            continue
        by_stem.setdefault(os.path.splitext(entry.name)[0], []).append(Path(entry.path))
    out: dict[str, Path] = {}
    for stem, files in by_stem.items():
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            problems.append(Problem(files[0], "duplicate-stem",
                                    f"{folder}: several files share the stem {stem!r} ({names}); "
                                    "which one is the partner is ambiguous, all are skipped"))
            continue
        if not stem.isascii():
            problems.append(Problem(files[0], "non-ascii-name",
                                    f"{files[0]}: file name is not ASCII; pair ids must be portable, "
                                    "rename the file (and its partner)"))
            continue
        out[stem] = files[0]
    return out


def pairs_of_group(group: PairGroup, problems: list[Problem]) -> list[PairRecord]:
    """Pair the files of one group by stem; unpaired files are problems."""
    n_before = len(problems)
    ir_files = _index_folder(group.ir_dir, problems)
    vis_files = _index_folder(group.vis_dir, problems)
    if any(p.kind == "unreadable-folder" for p in problems[n_before:]):
        return []  # one side cannot be listed: its partners are not "unpaired", the folder problem says it all
    if not ir_files and not vis_files:
        problems.append(Problem(group.ir_dir, "empty-folder",
                                f"{group.ir_dir} and {group.vis_dir} hold no image files "
                                f"({', '.join(_ext_list())})"))
        return []
    records = []
    for stem in sorted(set(ir_files) | set(vis_files)):
        if stem not in vis_files:
            problems.append(Problem(ir_files[stem], "unpaired",
                                    f"{ir_files[stem]}: IR image has no VIS partner named {stem}.* in {group.vis_dir}"))
            continue
        if stem not in ir_files:
            problems.append(Problem(vis_files[stem], "unpaired",
                                    f"{vis_files[stem]}: VIS image has no IR partner named {stem}.* in {group.ir_dir}"))
            continue
        pid = f"{group.source}/{stem}"
        if len(safe_name(pid).encode("utf-8")) > MAX_PAIR_NAME:
            problems.append(Problem(ir_files[stem], "name-too-long",
                                    f"{ir_files[stem]}: pair id {pid[:40]}... is {len(safe_name(pid))} characters as a "
                                    f"file name; at most {MAX_PAIR_NAME} leave room for the setting and suffixes of "
                                    f"the files made from it (limit {NAME_MAX}); rename the pair (or the source)"))
            continue
        records.append(PairRecord(pid, group.source, stem, ir_files[stem], vis_files[stem], group.split))
    return records


def _ext_list() -> list[str]:
    from .images import IMAGE_EXTENSIONS

    return list(IMAGE_EXTENSIONS)


def _checked(record: PairRecord, ir16: Ir16, max_pixels: int = DEFAULT_MAX_PIXELS) -> PairRecord | Problem:
    try:
        loaded = read_pair(record, ir16=ir16, max_pixels=max_pixels)
    except PairError as exc:
        return Problem(exc.path, exc.kind, str(exc), record.pair_id)
    vis = loaded.vis
    return replace(record, height=int(vis.shape[0]), width=int(vis.shape[1]),
                   vis_channels=1 if vis.ndim == 2 else int(vis.shape[2]))


def discover(
    *roots: str | os.PathLike[str],
    ir_dir: str | os.PathLike[str] | None = None,
    vis_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    check: Check = "full",
    ir16: Ir16 = "error",
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ScanResult:
    """Find every registered pair under ``roots`` (layouts auto-detected) and/or in ``ir_dir`` + ``vis_dir``.

    ``name`` overrides the source name (for the explicit ``ir_dir``/``vis_dir`` form it defaults to the
    parent folder's name). ``check="full"`` decodes every file (finds truncated files, channel
    and size problems); ``"none"`` only pairs names. ``progress(n)`` is called as pairs are checked.
    ``max_pixels`` bounds the pixels of one image (checked from its header before decoding; default
    :data:`~demmi_rf.sources.images.DEFAULT_MAX_PIXELS`).
    Never raises for bad input: every problem is returned in :attr:`ScanResult.problems`.
    """
    max_pixels = check_max_pixels(max_pixels)
    result = ScanResult(roots=[Path(r) for r in roots])
    groups: list[PairGroup] = []
    for root in result.roots:
        if _dangling_link(root):
            result.problems.append(Problem(root, "missing-path",
                                           f"{root}: is a symbolic link that does not resolve (broken, or a loop)"))
            continue
        try:
            exists, is_dir = root.exists(), root.is_dir()
        except OSError as exc:  # e.g. a parent folder that cannot be entered
            result.problems.append(_os_problem(root, exc, "look at the path"))
            continue
        if not exists:
            result.problems.append(Problem(root, "missing-path", f"{root}: path does not exist"))
            continue
        if not is_dir:
            result.problems.append(Problem(root, "not-a-folder", f"{root}: not a folder"))
            continue
        n_before = len(result.problems)
        found = find_groups(root, result.problems)
        if not found and len(result.problems) == n_before:
            result.problems.append(Problem(
                root, "no-pairs",
                f"{root}: no IR/VIS folder pair found (looked for sibling folders named like "
                f"{'/'.join(layouts.IR_FOLDERS[:4])}... and {'/'.join(layouts.VIS_FOLDERS[:4])}...); "
                "give the folders explicitly with --ir-dir/--vis-dir"))
        if name:
            found = [replace(g, source=layouts.sanitize_source(name)) for g in found]
        groups.extend(found)
    if ir_dir is not None or vis_dir is not None:
        groups.extend(_explicit_group(ir_dir, vis_dir, name, result.problems))
    result.groups = groups

    records: list[PairRecord] = []
    for g in groups:
        found_pairs = pairs_of_group(g, result.problems)
        result.group_sizes.append(len(found_pairs))
        records.extend(found_pairs)
    records = _dedupe(records, result.problems)
    if check == "full":
        records = _check_all(records, ir16, workers, result.problems, progress, max_pixels)
    result.pairs = sorted(records, key=lambda r: r.pair_id)
    return result


def _explicit_group(ir_dir, vis_dir, name, problems: list[Problem]) -> Iterable[PairGroup]:
    if ir_dir is None or vis_dir is None:
        problems.append(Problem(Path(ir_dir or vis_dir), "bad-arguments",
                                "--ir-dir and --vis-dir must be given together"))
        return []
    ir_p, vis_p = Path(ir_dir), Path(vis_dir)
    ok = True
    for p in (ir_p, vis_p):
        try:
            is_dir = p.is_dir()
        except OSError as exc:
            problems.append(_os_problem(p, exc, "look at the folder"))
            ok = False
            continue
        if not is_dir:
            problems.append(Problem(p, "missing-path", f"{p}: folder does not exist"))
            ok = False
    if not ok:
        return []
    source = layouts.sanitize_source(name) if name else _source_name(ir_p.parent, ir_p.parent)
    return [PairGroup(source, None, "explicit", ir_p, vis_p)]


def _dedupe(records: list[PairRecord], problems: list[Problem]) -> list[PairRecord]:
    """Keep one record per pair id; identical copies (EMS repeats GT per degradation) merge silently."""
    seen: dict[str, PairRecord] = {}
    for r in records:
        first = seen.get(r.pair_id)
        if first is None:
            seen[r.pair_id] = r
        elif not (_same_file(first.ir_path, r.ir_path) and _same_file(first.vis_path, r.vis_path)):
            problems.append(Problem(r.ir_path, "duplicate-pair-id",
                                    f"{r.ir_path}: pair id {r.pair_id} also found at {first.ir_path} with different "
                                    "content; only the first is used (give the sources distinct names)"))
    return list(seen.values())


def _same_file(a: Path, b: Path) -> bool:
    """Whether two files have the same bytes (False when either cannot be read: the pair is then reported)."""
    if a == b:
        return True
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca, cb = fa.read(1 << 20), fb.read(1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except OSError:
        return False


def _check_all(records, ir16, workers, problems, progress, max_pixels=DEFAULT_MAX_PIXELS) -> list[PairRecord]:
    out: list[PairRecord] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for res in pool.map(lambda r: _checked(r, ir16, max_pixels), records):
            if isinstance(res, Problem):
                problems.append(res)
            else:
                out.append(res)
            if progress:
                progress(1)
    return out
