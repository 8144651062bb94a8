"""Errors that no retry can fix: the retry policy (``tricloud.retries``) fails a task at try 1 on these.

Everything the pipeline raises for a wrong setting, a wrong connection, a missing or unusable input, or a
failed data check derives from :class:`DeterministicError`. The policy recognises that one base class by
its dotted name (``include.errors.DeterministicError``), so a new error only has to subclass the right
class below to fail fast; any other error is retried with backoff, bounded by the task's ``retries``.

The configuration and input classes also subclass ``ValueError`` (and the missing-file ones
``FileNotFoundError``), so callers that caught the built-in error before keep working.
"""

from __future__ import annotations


class DeterministicError(Exception):
    """The next try would fail the same way: fix the cause named in the message, then clear the task."""


class ConfigError(DeterministicError, ValueError):
    """A setting, a connection or a path is missing or invalid; the message names what to set."""


class MissingFileConfigError(ConfigError, FileNotFoundError):
    """A file the deployment must provide (e.g. a Spark job module) is not there."""


class InputError(DeterministicError, ValueError):
    """The hour's input is unusable (empty, truncated, re-shaped): fix or re-deliver it, then re-run the hour."""


class MissingInputError(InputError, FileNotFoundError):
    """The hour's input (a raw drop or an earlier task's partition) is not there: deliver it or run that task."""


class CheckFailedError(DeterministicError):
    """A data check failed on data that a retry would read unchanged (quality gate, replica verification)."""


class QualityGateFailedError(CheckFailedError):
    """The hour failed its data-quality gate (include/quality.py); the message names each failed check."""


class ReplicaCheckFailedError(CheckFailedError):
    """Verifying an hour's replicas found objects that differed (repaired or not); the message lists them.

    Not retried, so a repaired replica shows as a failed run instead of vanishing in a retry that passes.
    """
