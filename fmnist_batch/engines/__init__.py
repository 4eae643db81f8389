"""Running conversion and prediction at scale. An engine turns files into rows, in input order:
`local` (worker processes on this machine) and `ray` (a Ray cluster) register under their names, and the
classify job, the CLI and Python callers choose one by name.

An engine is made as `Engine(options, model, conversion)` and used as a context manager; `run(files,
on_batch)` yields one row per file, calling `on_batch()` after each batch's rows (the writer flushes then).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fmnist_batch.discover import InputFile

# Named by import path, so that choosing "local" never imports Ray.
_ENGINES: dict[str, str | Callable[..., Any]] = {
    "local": "fmnist_batch.engines.local:LocalEngine",
    "ray": "fmnist_batch.engines.ray:RayEngine",
}


class Engine(Protocol):
    def run(
        self, files: Iterable[InputFile], on_batch: Callable[[], None] | None = None
    ) -> Iterator[dict]: ...

    def close(self, terminate: bool = False) -> None: ...


def register_engine(name: str, factory: str | Callable[..., Any]) -> None:
    """Make an engine choosable by `name`: a callable, or "module:attribute" imported when chosen."""
    _ENGINES[name] = factory


def engine_names() -> tuple[str, ...]:
    return tuple(_ENGINES)


def engine_factory(name: str) -> Callable[..., Any]:
    try:
        factory = _ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(_ENGINES)}") from None
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory
