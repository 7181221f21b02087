"""The errors everylabel raises for problems a user can fix, under one base class.

Everything here is user-facing: the message names the field (and the item) at fault, and the
command line prints it as one line with exit status 2. Any other exception is an internal error.
"""

from __future__ import annotations


class EverylabelError(Exception):
    """Base class of the errors a user can fix (bad input, config, data, a missing extra)."""


class InputError(EverylabelError, ValueError):
    """Bad input to `classify` (or the CLI). `field` is like "labels[2]" or "texts[7]"."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConfigError(EverylabelError, ValueError):
    """A model configuration value is invalid; the message names the key and what is allowed."""


class TrainConfigError(EverylabelError, ValueError):
    """A bad training config; the message names the key."""


class DataError(EverylabelError, ValueError):
    """A bad training record; the message is `file:line: field: problem`."""


class NotSupportedError(EverylabelError, NotImplementedError):
    """A valid option or checkpoint kind that this version cannot run yet; the message names it."""


class MissingDependencyError(EverylabelError, ImportError):
    """An optional package that a command needs is not installed; the message says how to get it."""


class NumericalError(EverylabelError, FloatingPointError):
    """The model produced inf or nan (for example float16 overflow); the message says what to change."""


class TooMuchWork(InputError):
    """A request asks for more work than a bound allows (labels, model passes, tokens); HTTP 413."""


class UnknownAdapter(InputError):
    """A call names an adapter the classifier does not have (field "adapter"); HTTP 404."""
