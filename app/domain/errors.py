"""Domain errors.

Each carries the HTTP status the web layer answers with, and subclasses the exception the seed
store contracts document (``FileNotFoundError`` for a missing item, ``ValueError`` for bad or
duplicate input), so code written against the seeds keeps working.
"""

from __future__ import annotations


class YdcError(Exception):
    """Base of every error ydc raises on purpose; ``str(error)`` is a message for a person."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(YdcError, FileNotFoundError):
    """The project, image, label, model, session or task does not exist."""

    status = 404


class Invalid(YdcError, ValueError):
    """Input that can never be accepted as given (bad name, malformed label, out-of-range box)."""

    status = 422


class AlreadyExists(Invalid):
    """A name (or content) that must be unique is already taken."""


class DuplicateImage(AlreadyExists):
    """The same bytes (sha256) are already stored in the project."""

    def __init__(self, message: str, *, existing_filename: str) -> None:
        super().__init__(message)
        self.existing_filename = existing_filename


class NearDuplicate(AlreadyExists):
    """The image's perceptual hash lies within the bits asked of a given one (a webcam frame
    too similar to the session's last kept frame)."""

    def __init__(self, message: str, *, distance: int) -> None:
        super().__init__(message)
        self.distance = distance


class NotMissing(AlreadyExists):
    """The bytes given to locate a missing image belong to an image whose file is there."""

    def __init__(self, message: str, *, filename: str) -> None:
        super().__init__(message)
        self.filename = filename


class Forbidden(YdcError, PermissionError):
    """A place ydc may not touch (a server folder outside ``YDC_IMPORT_ROOTS``)."""

    status = 403


class Conflict(YdcError, ValueError):
    """The request was valid but lost a race (stale version, task already finished)."""

    status = 409


class Cancelled(YdcError):
    """A task noticed that a cancel was requested and stopped."""

    status = 409
