"""The one idiom for a component a config names (a reward, a benchmark, a training dataset, a rollout
engine): a Registry maps the config's name to the component, given as the object itself or as
"module:attribute", imported on first use (so a benchmark's judge client or vLLM is imported only by
the runs that name it). An unknown name is a KeyError listing the registered ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(MutableMapping[str, T], Generic[T]):
    def __init__(self, kind: str, entries: Mapping[str, T | str]) -> None:
        # What the names name ("reward", "benchmark", ...): the error messages say it.
        self.kind = kind
        self._entries: dict[str, Any] = dict(entries)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def __contains__(self, name: object) -> bool:
        # Mapping's default would look the entry up, importing it: a name check imports nothing.
        return name in self._entries

    def __setitem__(self, name: str, entry: T | str) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
