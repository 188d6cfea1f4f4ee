"""User-facing errors. Each message says what is wrong *and* what to do."""


class TemsegError(Exception):
    """Base class for errors meant to be shown to the user as they are."""


class ConfigError(TemsegError, ValueError):
    """A configuration value is out of range; the message says what to use instead."""


class InputError(TemsegError, ValueError):
    """Bad image / mask / layer input (shape, values, dtype, ...)."""


class ModelFileError(TemsegError, ValueError):
    """A model file is missing, corrupt, or does not match its config."""


class SaveError(TemsegError):
    """A file could not be written (disk full, read-only drive, no permission, ...)."""
