"""What the bundle may write into, replace or delete: only what it wrote itself.

Every folder the bundle writes into carries its marker, :data:`MARKER` (``.jasgan-bundle.json``: the writer, the
kind of folder, the bundle version). A writer *claims* its folder before it writes a byte (:func:`claim_folder`):

- an absent folder is made (with any missing parents, each marked: the bundle made them) and marked;
- an empty folder is marked and used;
- a folder with the marker is the bundle's already and is used;
- anything else (a dataset, a user's folder, another tool's output) is refused with :class:`ForeignPathError`, and so
  is a folder inside an input the bundle reads but did not write (``inputs``): the bundle never adds to its inputs.

Only a folder whose marker names the same kind is ever deleted and made anew (:func:`replace_folder`). A single file
the user names (a plan, a JSON summary) replaces only a file the bundle wrote, recognised by its content
(:func:`check_replaceable_file`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from bundle.atomic import atomic_write_text
from bundle.errors import ForeignPathError

logger = logging.getLogger(__name__)

MARKER = ".jasgan-bundle.json"
"""The file that marks a folder as written by this bundle."""

WRITER = "jasgan-bundle"
"""The ``written_by`` value of :data:`MARKER`."""

PARENT_KIND = "parent folder"
"""Kind of a folder the bundle made only to hold the folder it claimed."""


def folder_kind(path: str | Path) -> str | None:
    """The kind of bundle folder ``path`` is (its marker's ``kind``), or None when it carries no readable marker."""
    marker = Path(path) / MARKER
    try:
        document = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("written_by") != WRITER:
        return None
    return str(document.get("kind", ""))


def is_marked(path: str | Path) -> bool:
    """Whether ``path`` is a folder with the bundle's marker."""
    return folder_kind(path) is not None


def within_bundle_folder(path: str | Path) -> bool:
    """Whether ``path`` or one of the folders above it carries the bundle's marker (the bundle wrote it)."""
    path = Path(path).absolute()
    return any(is_marked(p) for p in (path, *path.parents))


def _mark(folder: Path, kind: str) -> None:
    from bundle import __version__  # the package's version; imported here, the package imports this module

    document = {"written_by": WRITER, "kind": kind, "version": __version__,
                "note": "written by the JAS-GAN bundle; it replaces or deletes only folders that carry this file"}
    atomic_write_text(folder / MARKER, json.dumps(document, indent=2) + "\n")


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_outside_inputs(path: str | Path, inputs: Iterable[str | Path | None], what: str) -> None:
    """Refuse ``path`` (an output) when it lies inside one of ``inputs`` that the bundle did not write.

    Raises:
        ForeignPathError: naming ``path`` and the input it lies in.
    """
    for folder in inputs:
        if folder is None:
            continue
        folder = Path(folder)
        if folder.is_file():  # a datalist's dataset.json: its folder is the input
            folder = folder.parent
        if _inside(Path(path), folder) and not within_bundle_folder(folder):
            raise ForeignPathError(path, f"the {what} lies inside the input {folder}, which the bundle reads but did "
                                         "not write: it never adds files to its inputs; choose a folder outside it")


def claim_folder(path: str | Path, kind: str, inputs: Iterable[str | Path | None] = (),
                 expected: Iterable[str] = ()) -> Path:
    """Make ``path`` a folder the bundle may write ``kind`` into (see the module's rules) and return it.

    ``expected``: names (glob patterns) of what a library the bundle runs may have written into the folder just before
    (MONAI's experiment tracking writes its executed config into the training logs before the run starts): a folder
    holding only those counts as empty.

    Raises:
        ForeignPathError: ``path`` is a file, holds files the bundle did not write, or lies inside a foreign input.
    """
    path = Path(path)
    check_outside_inputs(path, inputs, kind)
    if path.exists() and not path.is_dir():
        raise ForeignPathError(path, f"is a file, not a folder: the bundle writes its {kind} into a folder")
    if path.is_dir():
        if is_marked(path):
            return path
        patterns = tuple(expected)
        if any(not any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns) for p in path.iterdir()):
            raise ForeignPathError(
                path, f"holds files the bundle did not write (no {MARKER} in it): it writes its {kind} only into an "
                      "absent or empty folder, or one it made; choose another folder (nothing was changed)")
        _mark(path, kind)
        return path
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):
        if not is_marked(folder):
            _mark(folder, kind if folder == path else PARENT_KIND)
    return path


def replace_folder(path: str | Path, kind: str, recognise: Callable[[Path], bool] | None = None,
                   hint: str = "") -> Path:
    """Delete ``path`` if the bundle wrote it as ``kind`` (its marker, or ``recognise(path)`` for folders written
    before markers existed), then claim it empty. An absent or empty folder is simply claimed.

    Raises:
        ForeignPathError: ``path`` holds anything else; nothing is deleted. ``hint`` ends the message.
    """
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        found = folder_kind(path)
        if found != kind and not (recognise is not None and recognise(path)):
            why = (f"the bundle wrote it as {found}, not as {kind}" if found is not None
                   else f"it holds files the bundle did not write (no {MARKER} in it)")
            raise ForeignPathError(path, f"not replaced: {why}; the bundle replaces only a {kind} it wrote itself "
                                         f"(nothing was changed){'; ' + hint if hint else ''}")
        logger.info("replacing the %s %s", kind, path)
        shutil.rmtree(path)
    return claim_folder(path, kind)


def check_replaceable_file(path: str | Path, recognise: Callable[[Path], bool], what: str) -> Path:
    """Refuse to overwrite ``path`` unless it is absent or ``recognise(path)`` says the bundle wrote it.

    Raises:
        ForeignPathError: ``path`` is a folder or a file the bundle did not write.
    """
    path = Path(path)
    if path.is_dir():
        raise ForeignPathError(path, f"is a folder; the {what} is a file")
    if path.exists() and not recognise(path):
        raise ForeignPathError(path, f"exists and is not a {what} the bundle wrote: it is not overwritten; choose "
                                     "another file name")
    return path


def json_file_with(path: Path, test: Callable[[object], bool]) -> bool:
    """Whether ``path`` holds JSON for which ``test`` is true (unreadable or not JSON: False)."""
    try:
        return bool(test(json.loads(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
