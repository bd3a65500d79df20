"""Errors raised for bad input: each names the file and what is wrong."""

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
