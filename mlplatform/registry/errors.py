"""The registry's errors: each says what is wrong and what the person can do next."""

from __future__ import annotations

from pathlib import Path

from mlplatform import locks


class RegistryError(RuntimeError):
    """Base error of the registry package."""


class ExportIntegrityError(RegistryError):
    """An export folder is missing a file or a file does not match its checksum."""

    def __init__(self, message: str, *, file: str | Path | None = None) -> None:
        super().__init__(message)
        self.file = str(file) if file is not None else None


class ArtifactLost(RegistryError):
    """A version's model files are gone from the registry or no longer match their checksum."""


class LockTimeout(RegistryError, locks.LockTimeout):
    """Another registry operation held the lock for longer than the timeout: a RegistryError, so
    the jobs that refuse on one refuse on this, and a locks.LockTimeout like any lock's."""


class PromotionError(RegistryError):
    """A promotion was refused or could not be completed."""


class RollbackError(PromotionError):
    """A rollback was refused; nothing was changed."""


class UnfinishedOperation(RegistryError):
    """An operation failed and could not undo itself: its intent is kept for the next command."""


class StorageError(RegistryError):
    """The disk under the export refused a write (read-only, full): names the path."""

    @classmethod
    def of(cls, exc: OSError, path: Path) -> StorageError:
        what = exc.strerror or str(exc)
        return cls(
            f"cannot write {path}: {what}. Free space or make the folder writable "
            f"(MLPLATFORM_MODELS_DIR chooses another), then run `make repair`"
        )
