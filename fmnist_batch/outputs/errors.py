"""What can go wrong writing results; the CLI maps each class to an exit status."""

from __future__ import annotations


class OutputError(Exception):
    """The results cannot be written or a previous run cannot be read; the message says what to do.
    The CLI exits 2."""


class OutputLocked(Exception):
    """Another run is writing the same output (the CLI exits 75, EX_TEMPFAIL)."""


class SettingsMismatch(OutputError):
    """--resume of a run whose rows were made with other settings (another model, --top-k, ...): mixing
    them would give one output two meanings. The message names the settings that differ."""


class MergeError(Exception):
    """Shard outputs that cannot be merged; the message says why. Nothing was written."""
