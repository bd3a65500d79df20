"""Errors raised for bad input and refused output: each names the path and what is wrong."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent.

    The message always starts with the offending path so a user sees at once which file to fix.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # pickled with its two arguments (raised in a worker process, re-raised in this one)
        return type(self), (self.path, self.problem)


class ForeignPathError(ValueError):
    """An output path holds what the bundle did not write (a dataset, a user's folder, another tool's files), or lies
    inside an input: the bundle refuses to write, replace or delete there (:mod:`bundle.ownership`).

    The message starts with the refused path, like :class:`DatasetError`'s.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # pickled with its two arguments (raised in a worker process, re-raised in this one)
        return type(self), (self.path, self.problem)
