"""The studio's error types. Each carries one message a user can act on.

The UI shows ``str(err)``; the CLI prints it and exits non-zero. Anything that is
not a StudioError is a bug and is reported as such.
"""

# The exit codes of `python -m studio` and `python app.py`: the one place they are defined.
EXIT_OK = 0
EXIT_USER_ERROR = 2  # bad input, a refused or failed render: the message on stderr says why
EXIT_INTERRUPTED = 130  # Ctrl+C (128 + SIGINT)


class StudioError(Exception):
    """Base class: the message says what went wrong and what to do."""


class InvalidRequest(StudioError):
    """A request field is out of range or malformed."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        lines = [f"{field}: {msg}" for field, msg in self.errors.items()]
        super().__init__("Invalid request - " + "; ".join(lines))


class UnknownModel(StudioError):
    pass


class NotAModel(StudioError):
    """A path given as a model that is not a model folder (missing, a file, no or broken configs)."""


class ModeNotServed(StudioError):
    pass


class WeightsUnavailable(StudioError):
    """Weights are not on disk and may not be downloaded."""


class NotEnoughMemory(StudioError):
    pass


class MediaError(StudioError):
    """An input image or video could not be read or used."""


class RenderCancelled(StudioError):
    def __init__(self, message: str = "Render cancelled."):
        super().__init__(message)


class DownloadFailed(StudioError):
    """A model download could not start or did not finish (offline, hub, network, licence)."""


class NotEnoughDisk(StudioError):
    """A download would not fit in the free space where the hub cache lives."""


class FolderOwned(StudioError):
    """Another process owns the data folder, and this command may not run beside it (e.g. --standalone)."""


class OwnerNotAnswering(StudioError):
    """The studio that owns the data folder holds its lock but its API does not answer."""


class BadLora(StudioError):
    """A LoRA file that is missing, not safetensors, or not made for the model it is used with."""


class NoStudioMetadata(StudioError):
    """A file given to restore from that the studio did not write (no settings in its metadata)."""


class OutsideFolders(StudioError):
    """A file named from outside (a browser, an API client, a database row) that is not a regular file inside the
    studio's folders, or does not exist: the message is the same (studio/engine/confine.py)."""


class DataFolderUnusable(StudioError):
    """The data folder is a file, cannot be made or written, or holds a database that is not the studio's."""


class DiskFull(StudioError):
    """A write was refused because the disk holding the data folder is full."""


class StudioStopped(StudioError):
    """The studio a command sent its job to stopped (or was killed) before the job ended; the job waits in its
    queue."""


def internal_error(exc: BaseException) -> str:
    """What a user is told of a bug (a programming error, logged with its traceback where it was caught): never
    that their input was bad."""
    return f"Internal error ({type(exc).__name__}: {exc}); this is a bug, not your input: see the studio's log."
