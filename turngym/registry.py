"""Registries: a plain dict of name -> entry that also keeps per-entry metadata and knows which library modules
register more entries when imported, plus `import_plugins`, which imports a user's modules (module names or .py
paths) so that what they register is found by name. The trainer's axes (`turngym.trainers.registry`) and the model
backends (`turngym.agents.base.AGENTS`) are registries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from turngym.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(dict[str, Any]):
    """name -> entry (a function, factory or class) plus metadata per name.

    `axis` names the kind of entry in error messages ("advantage estimator"); `defaults` is the metadata an entry has
    when it was registered without some key (or by plain assignment); `plugins` are modules (relative to `package`)
    imported on the first lookup of a name that is not registered yet.
    """

    def __init__(
        self,
        axis: str,
        defaults: dict[str, Any] | None = None,
        plugins: tuple[str, ...] = (),
        package: str = "turngym.trainers",
    ) -> None:
        super().__init__()
        self.axis = axis
        self.defaults = dict(defaults or {})
        self.plugins = plugins
        self.package = package
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: Any = None, **meta: Any) -> Any:
        """Register `obj` under `name` with metadata `meta` (unknown metadata keys raise). Without `obj`, a decorator:

        @ADVANTAGES.register("mine")
        def mine(step_rewards, obs_keys, cfg): ...
        """
        unknown = sorted(set(meta) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"register {self.axis} {name!r}: unknown metadata {unknown}; accepted: "
                f"{', '.join(sorted(self.defaults)) or '(none)'}"
            )
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.axis} name must be a non-empty string, got {name!r}")

        def add(o: T) -> T:
            self[name] = o
            self._meta[name] = dict(meta)
            return o

        return add if obj is None else add(obj)

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata of `name`: what it was registered with over the registry's defaults."""
        self.get_entry(name)
        return {**self.defaults, **self._meta.get(name, {})}

    def load_plugins(self) -> None:
        """Import the library modules that register entries of this axis (each once; a missing one is skipped)."""
        for mod in self.plugins:
            full = f"{self.package}.{mod}"
            try:
                importlib.import_module(full)
            except ModuleNotFoundError as exc:
                if exc.name != full:
                    raise

    def names(self) -> list[str]:
        """Every registered name (after loading the plugin modules), sorted."""
        self.load_plugins()
        return sorted(self)

    def get_entry(self, name: str) -> Any:
        """The entry of `name`; `UnknownNameError` listing the registered names when there is none."""
        if name not in self:
            self.load_plugins()
        if name not in self:
            raise UnknownNameError(
                f"unknown {self.axis} {name!r}; registered: {', '.join(sorted(self)) or '(none)'}"
            )
        return self[name]

    def check(self, name: Any, field: str) -> None:
        """`ConfigError` naming the config `field` when `name` is not registered."""
        if isinstance(name, str) and name:
            if name not in self:
                self.load_plugins()
            if name in self:
                return
        raise ConfigError(
            f"config field {field!r} is {name!r}: not a registered {self.axis}; registered: "
            f"{', '.join(sorted(self)) or '(none)'}"
        )


def import_plugins(specs: list[str], field: str = "plugins") -> None:
    """Import the user modules that register pieces: a module name (`mypkg.losses`) or the path of a .py file
    (imported once, under a name derived from its resolved path). `ConfigError` names the entry that fails and where
    it came from: `field` is a config field name (`plugins`) or a command-line option (`--plugin`)."""
    import hashlib
    import importlib.util
    import sys
    from pathlib import Path

    where = field if field.startswith("-") else f"config field {field!r}"
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"{where}: each entry must be a module name or a .py path, got {spec!r}")
        if spec.endswith(".py"):
            path = Path(spec).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{where}: {spec!r} is not a file")
            name = f"turngym_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
            if name in sys.modules:
                continue
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            try:
                mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
            except Exception as exc:
                del sys.modules[name]
                raise ConfigError(f"{where}: importing {spec} failed: {exc!r}") from exc
        else:
            try:
                importlib.import_module(spec)
            except ImportError as exc:
                raise ConfigError(f"{where}: cannot import module {spec!r}: {exc}") from exc


def decorator(registry: Registry) -> Callable[..., Any]:
    """`register_x = decorator(X)`: `@register_x("name", **meta)` or `register_x("name", obj, **meta)`."""

    def register(name: str, obj: Any = None, **meta: Any) -> Any:
        return registry.register(name, obj, **meta)

    register.__doc__ = f"Register a {registry.axis} under `name` (decorator, or pass the object)."
    return register
