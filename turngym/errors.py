"""The few exception types turngym raises. Messages say what was wrong and how to fix it."""

from __future__ import annotations


class TurngymError(Exception):
    """Base class of every error turngym raises on purpose."""


class MissingExtraError(TurngymError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class TaskPackError(TurngymError, ValueError):
    """A task pack is malformed: the message names the file, the record and the field."""


class ConfigError(TurngymError, ValueError):
    """A configuration value is invalid: the message names the field and the accepted values."""


class EnvError(TurngymError, RuntimeError):
    """An environment could not be created or has failed (for example its browser died)."""


class WorkerError(TurngymError, RuntimeError):
    """A remote worker (a Ray rollout actor) failed for good, or its results came back wrong."""


class UnknownNameError(TurngymError, KeyError):
    """A name looked up in a registry does not exist; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
