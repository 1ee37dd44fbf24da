"""A named table of extension entries (graph kinds, model families, schedules, optimisers,
losses, config fields): declared once, next to their code, by the package or by a user's
own module, and read by everything else.

A name is registered once: a clash with a built-in or another registration is refused in
one line naming where the first one came from. Lookups of an unknown name list what is
registered, so error messages and listings never go stale.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order; `what` names them in messages."""

    def __init__(self, what: str, dotted: bool = False):
        self.what = what
        self._dotted = dotted  # names are dotted paths of words (config fields)
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str, entry: T, origin: str = "") -> T:
        """Adds `entry` under `name` (`origin`: the module declaring it, for messages);
        ValueError if the name is taken or not a plain word."""
        words = name.split(".") if isinstance(name, str) and self._dotted else [name]
        if not all(isinstance(w, str) and w.isidentifier() for w in words):
            raise ValueError(f"{self.what} name {name!r} must be a word of letters, digits and "
                             "underscores" + (" (dot-separated words)" if self._dotted else ""))
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered (by "
                             f"{self._origins[name]}); choose another name")
        self._entries[name] = entry
        self._origins[name] = origin or "an unnamed module"
        return entry

    def declare(self, entry: T, depth: int = 1) -> T:
        """Registers `entry` under `entry.name`, naming the calling module as its origin
        (`depth` frames up: 1 for a module calling this, 2 for a helper wrapping it)."""
        caller = sys._getframe(depth).f_globals.get("__name__", "")
        return self.register(entry.name, entry, origin=caller)

    def unregister(self, name: str) -> None:
        del self._entries[name], self._origins[name]

    @contextlib.contextmanager
    def registered(self, name: str, entry: T, origin: str = "") -> Iterator[T]:
        """`entry` registered for the block only (tests)."""
        self.register(name, entry, origin)
        try:
            yield entry
        finally:
            self.unregister(name)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; allowed: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name) -> bool:
        return name in self._entries

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def markdown_table(self, header: str = "summary") -> str:
        """A docs table of the entries, `| name | summary |`, in registration order."""
        rows = [f"| {self.what} | {header} |", "|---|---|"]
        rows += [f"| `{name}` | {entry.summary} |" for name, entry in self.items()]
        return "\n".join(rows)


@dataclasses.dataclass(frozen=True)
class Component:
    """An entry that is one function: a learning-rate schedule, an optimiser, a loss.
    `make` builds it from the train config (its contract is the registry's docstring);
    `summary` is its line in the docs table."""
    name: str
    summary: str
    make: Callable
