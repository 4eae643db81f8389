"""What merge checks of the shard outputs it joins: that their runs split the same inputs and made their
rows with the same settings (each difference named on a line of its own)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fmnist_batch.outputs.destination import settings_path
from fmnist_batch.outputs.errors import MergeError
from fmnist_batch.outputs.resume import settings_differences

if TYPE_CHECKING:
    from fmnist_batch.outputs.shards import ShardRecord


def check_same_inputs(records: dict[str, ShardRecord | None]) -> None:
    """MergeError naming what differs when the records say their runs split different inputs (slices of
    different folders would merge into rows of neither)."""
    described = {name: record.inputs for name, record in records.items() if record and record.inputs}
    if len(described) < 2:
        return
    (first, expected), *others = described.items()
    for name, found in others:
        differ = settings_differences(expected, found)
        if differ:
            raise MergeError(
                f"{first!r} and {name!r} are slices of different inputs:"
                + line_per_key(differ, first, name)
                + "\nmerge only the shards of one split: every host must run the same inputs"
            )


def common_settings(shard_outputs: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """(the settings record the outputs share, gaps for outputs without one); MergeError naming each
    setting that differs, as rows made with other settings read the same photos differently."""
    common: dict[str, Any] = {}
    common_from = ""
    unknown = []
    for name in shard_outputs:
        recorded = read_settings(name)
        if recorded is None:
            unknown.append(
                f"{name!r} has no settings record ({settings_path(name)!r}), so what its rows were made "
                "with is unknown; the merged output gets none"
            )
        elif not common_from:
            common, common_from = recorded, name
        else:
            differ = settings_differences(common.get("settings") or {}, recorded.get("settings") or {})
            if differ:
                raise MergeError(
                    f"{common_from!r} and {name!r} were made with other settings:"
                    + line_per_key(differ, common_from, name)
                    + "\nmerge only the shards of one run; rerun a shard with the others' settings"
                )
    return common, unknown


def read_settings(output: str) -> dict[str, Any] | None:
    try:
        with open(settings_path(output), encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise MergeError(f"cannot read the settings record of {output!r}: {e}") from e


def line_per_key(differ: list[tuple[str, str, str]], first: str, second: str) -> str:
    # one line a key, so a changed conversion option is not lost among the dozen that agree
    return "".join(f"\n  {key}: {a} in {first!r}, {b} in {second!r}" for key, a, b in differ)
