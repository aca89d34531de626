"""Named parts by kind (workloads, KV-cache techniques, tasks, rewards), all kept the same way.

A ``Registry`` maps names to parts of one kind. Parts join it with the ``@REGISTRY.register``
decorator, or from another package through an entry-point group, which is read (not
imported) on first use; an entry point's module is imported only when its name is looked up.
A name that is not there is a ``SpecError`` (and a ``KeyError``) that says what kind of part
was asked for, what is accepted and what was probably meant.

Workload packages import this module and ``sweeps.errors`` only: both depend on the
standard library alone. The workloads themselves are ``WORKLOADS`` (entry points in the
group ``sweeps.workloads``), so the core knows them by name and never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sweeps.errors import FieldError, SpecError, bad_choice, describe

if TYPE_CHECKING:
    from sweeps.workload import Workload

T = TypeVar("T")
E = TypeVar("E")


class UnknownName(SpecError, KeyError):
    """A registry has no part by that name: a ``SpecError`` for people, a ``KeyError`` for ``Mapping`` code."""

    def __str__(self) -> str:
        return self.render()


class Registry(Mapping[str, T], Generic[T]):
    """Parts of one ``kind`` by name: ``TECHNIQUES["snapkv"]``, ``"snapkv" in TECHNIQUES``, ``TECHNIQUES.names()``.

    ``group``: an entry-point group other packages add parts through (name = part's name,
    object = the part). ``build``: turns what is registered into the stored part (the
    workloads registry instantiates classes); by default the part is stored as given.
    """

    def __init__(
        self,
        kind: str,
        group: str | None = None,
        build: Callable[[Any], T] | None = None,
        empty_hint: str | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self._build = build
        self._empty_hint = empty_hint
        self._parts: dict[str, T] = {}
        self._modules: dict[str, str | None] = {}  # where each registered part comes from
        self._pending: dict[str, EntryPoint] | None = None  # None: the group was not read yet

    def register(self, part: E) -> E:
        """Decorator: add ``part`` under its ``name`` attribute (or its ``__name__``); returns it unchanged."""
        name = getattr(part, "name", None)
        if not isinstance(name, str) or not name:
            name = getattr(part, "__name__", "")
        if not name:
            raise ValueError(f"a {self.kind} needs a name (a `name` attribute or a __name__): {part!r}")
        pending = self._pending or {}
        if name in self._parts or (name in pending and pending[name].module != getattr(part, "__module__", None)):
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        pending.pop(name, None)  # the entry point's own module registering it on import
        self._add(name, part)
        return part

    def names(self) -> list[str]:
        """Every name, sorted, without importing any entry point's module."""
        return sorted({*self._parts, *self._entry_points()})

    def unknown(self, name: object) -> FieldError:
        """The problem of asking for ``name``: the kind, the name, what is accepted and a did-you-mean."""
        names = self.names()
        if not names:
            return FieldError(self.kind, f"no {self.kind} is registered", name, hint=self._empty_hint)
        error = bad_choice(self.kind, name, names)
        return FieldError(error.path, f"unknown {self.kind} {describe(name)}", name, error.accepted, error.hint)

    def __getitem__(self, name: str) -> T:
        if name not in self._parts:
            entry = self._entry_points().get(name) if isinstance(name, str) else None
            if entry is None:
                raise UnknownName([self.unknown(name)])
            self._load(name, entry)
        return self._parts[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._parts or name in self._entry_points())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"

    def _entry_points(self) -> dict[str, EntryPoint]:
        """The group's entry points not registered yet, read once."""
        if self._pending is None:
            found: dict[str, EntryPoint] = {}
            for entry in entry_points(group=self.group) if self.group else ():
                seen = found.get(entry.name)
                if entry.name in self._parts and self._modules[entry.name] == entry.module:
                    continue  # its module was imported, and registered it, before the group was read
                if (seen is not None and seen.value != entry.value) or entry.name in self._parts:
                    raise ValueError(f"{self.kind} {entry.name!r} is registered twice (entry point {entry.value})")
                found[entry.name] = entry
            self._pending = found
        return self._pending

    def _load(self, name: str, entry: EntryPoint) -> None:
        part = entry.load()  # a module that registers its parts itself has done so now
        if name not in self._parts:
            self._pending.pop(name, None)  # type: ignore[union-attr]
            self._add(name, part)

    def _add(self, name: str, part: Any) -> None:
        self._parts[name] = self._build(part) if self._build else part
        self._modules[name] = getattr(part, "__module__", None)


def _workload(part: Any) -> Workload:
    """A workload entry point names a class (or a factory): the registry keeps one instance of it."""
    from sweeps.workload import Workload

    workload = part() if isinstance(part, type) or (callable(part) and not isinstance(part, Workload)) else part
    if not isinstance(workload, Workload):
        raise TypeError(f"{part!r} does not provide the sweeps Workload interface (sweeps/workload.py)")
    return workload


WORKLOADS: Registry[Workload] = Registry(
    "workload", group="sweeps.workloads", build=_workload, empty_hint="install the project with `pip install -e .`"
)


def get(name: str) -> Workload:
    """The workload named ``name`` (``WORKLOADS[name]``): a SpecError with the accepted names otherwise."""
    return WORKLOADS[name]
