"""The errors a user can cause, in one place: each message names the file, flag or value and what to do.

The command line turns each into one `error:` line (no traceback unless `--debug`): a usage
mistake exits with status 2, a failure of the data or the run with status 1. Nothing here
imports anything, so the command line knows them before it loads a model.

>>> str(DatasetError("The dataset folder x has no left/ folder.", problems={"missing": ["left/"]}))
'The dataset folder x has no left/ folder.'
"""

from __future__ import annotations

__all__ = ["BusyError", "CheckpointError", "DatasetError", "DiskFullError", "DownloadError", "InputError",
           "UnreadableImage", "UsageError", "WeightsUnavailableError"]


class UsageError(ValueError):
    """A command-line choice that cannot work here (flags that do not go together, a flag that moved)."""


class DatasetError(ValueError):
    """A dataset that cannot be used as it is. The message names the files and what to do.

    `problems` maps each kind of problem to the full list of offending files.
    """

    def __init__(self, message: str, problems: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.problems = problems or {}


class UnreadableImage(OSError):
    """An image file that cannot be decoded (truncated, not an image, too many pixels); the message names it.

    `reason` says what is wrong in a few words ("truncated"), without the file's name.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class InputError(ValueError):
    """An input file or folder that cannot be used; the message names it."""


class DownloadError(RuntimeError):
    """The release could not be fetched or installed; the message says what to do instead."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded; the message says where to put them by hand."""


class CheckpointError(ValueError):
    """A file given as a checkpoint that cannot be used; the one-line message names it and says what it is."""


class BusyError(RuntimeError):
    """Another run writes the same output; the message names it and the process."""


class DiskFullError(OSError):
    """A file could not be written because its disk is full; the message names it. What the file held
    before is kept (every write goes to a temporary file first)."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""
