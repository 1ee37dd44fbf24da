"""A named table of extension entries (graph kinds today): declared once, next to their
code, by the package or by a user's own module, and read by everything else.

A name is registered once: a clash with a built-in or another registration is refused in
one line naming where the first one came from. Lookups of an unknown name list what is
registered, so error messages and listings never go stale.
"""
from __future__ import annotations

import contextlib
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order; `what` names them in messages."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str, entry: T, origin: str = "") -> T:
        """Adds `entry` under `name` (`origin`: the module declaring it, for messages);
        ValueError if the name is taken or not a plain word."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.what} name {name!r} must be a word of letters, digits and "
                             "underscores")
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered (by "
                             f"{self._origins[name]}); choose another name")
        self._entries[name] = entry
        self._origins[name] = origin or "an unnamed module"
        return entry

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
