"""The task-pack format, loader and validator.

Layout of a pack folder::

    my-pack/
      manifest.json        {"name", "version", "family", "schema_version": 1, "splits": {"train": "train.jsonl", ...},
                            "license", "source", "description", "metadata", <family fields>}
      train.jsonl          one task record per line: {"task_id": "...", <family fields>}
      assets/...           anything the records refer to (paths relative to the pack folder)

Split files are UTF-8 JSON Lines (`.jsonl`) or its gzip (`.jsonl.gz`) inside the pack folder. Every record needs a
unique string `task_id`; the env family declares the other fields in a `TaskSchema` (its `task_fields`): their types,
the family's manifest fields, and the checks that what playing relies on holds (assets, cross-references). Loading a
split runs all of it, so a pack that loads plays; `validate_pack` loads every split the same way. Unknown fields are
errors. Errors are `TaskPackError`s naming the file, the line, the record and the field.
"""

from __future__ import annotations

import difflib
import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from turngym.errors import TaskPackError, TurngymError

SCHEMA_VERSION = 1
BUILTIN_DIR = Path(__file__).resolve().parent
ENTRY_POINT_GROUP = "turngym.tasks"
MANIFEST = "manifest.json"
MAX_DEPTH = 32  # nesting of objects/lists a record or manifest may have
SPLIT_SUFFIXES = (".jsonl", ".jsonl.gz")
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object"}
_BOM = b"\xef\xbb\xbf"


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join(_TYPE_NAMES.get(x, x.__name__) for x in types)


def _is(value: Any, t: type | tuple[type, ...]) -> bool:
    types = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool):
        return bool in types
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


@dataclass(frozen=True)
class Field:
    """A field of a task record (or of a manifest): its JSON type, whether it is required, and what it means.

    `items` is the type of a list's elements or of an object's values; `example` is shown in the docs.
    """

    type: type | tuple[type, ...]
    required: bool = True
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    items: type | tuple[type, ...] | None = None
    example: Any = None

    def check(self, value: Any) -> str | None:
        """None if `value` fits, else what is wrong."""
        if not _is(value, self.type):
            return f"expected {_type_name(self.type)}, got {type(value).__name__} {value!r:.60}"
        if self.items is not None and isinstance(value, (list, dict)):
            pairs = enumerate(value) if isinstance(value, list) else value.items()
            for key, item in pairs:
                if not _is(item, self.items):
                    where = f"item {key}" if isinstance(value, list) else f"key {key!r}"
                    return (
                        f"{where}: expected {_type_name(self.items)}, got {type(item).__name__} {item!r:.60}"
                    )
        if self.choices is not None and value not in self.choices:
            return f"expected one of {list(self.choices)}, got {value!r:.60}"
        return None

    def type_text(self) -> str:
        """The type in words, for docs: 'list of string', 'object (values: string)'."""
        base = _type_name(self.type)
        if self.items is None:
            return base
        return (
            f"{base} of {_type_name(self.items)}"
            if self.type is list
            else f"{base} (values: {_type_name(self.items)})"
        )


class FieldError(ValueError):
    """Raised by a family's record or manifest check: `field` is wrong, `message` says how."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field {field!r}: {message}")
        self.field = field


class TaskSchema(Mapping[str, Field]):
    """What a family reads from its packs: record fields (the mapping itself), manifest fields, and checks.

    `prepare(pack)` runs once per pack before its records are checked and returns a context (for example the
    loaded catalog); `check(record, context)` runs on every record. Both raise `FieldError` (or `TaskPackError`,
    `ValueError`) when something playing relies on is wrong; the loader adds file, line and record.
    """

    def __init__(
        self,
        family: str,
        fields: Mapping[str, Field],
        *,
        manifest: Mapping[str, Field] | None = None,
        prepare: Callable[[TaskPack], Any] | None = None,
        check: Callable[[dict[str, Any], Any], None] | None = None,
        doc: str = "",
    ):
        self.family = family
        self.fields = dict(fields)
        self.manifest = dict(manifest or {})
        self.prepare = prepare
        self.check = check
        self.doc = doc

    def __getitem__(self, key: str) -> Field:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __repr__(self) -> str:
        return f"TaskSchema({self.family!r}, fields={list(self.fields)}, manifest={list(self.manifest)})"


def as_schema(fields: Mapping[str, Field] | None, family: str = "") -> TaskSchema | None:
    """`fields` as a `TaskSchema` (a plain dict of `Field`s gets no extra checks)."""
    if fields is None or isinstance(fields, TaskSchema):
        return fields
    return TaskSchema(family, fields)


# Manifest fields every pack has (a family's schema adds its own).
MANIFEST_FIELDS: dict[str, Field] = {
    "name": Field(str, doc="the pack's name (what `task_pack=` takes)", example="my-pack"),
    "version": Field(str, doc="the pack's version", example="1.0.0"),
    "family": Field(str, doc="the env family whose records these are", example="coding"),
    "schema_version": Field(
        int, required=False, doc=f"the pack format version ({SCHEMA_VERSION})", example=1
    ),
    "splits": Field(
        dict, items=str, doc="split name → file inside the pack folder", example={"train": "train.jsonl"}
    ),
    "license": Field(str, required=False, doc="license of the records and assets", example="CC-BY-4.0"),
    "source": Field(str, required=False, doc="where the tasks come from", example="written by hand"),
    "description": Field(str, required=False, doc="one paragraph on the pack", example="..."),
    "metadata": Field(dict, required=False, doc="free-form information turngym does not read", example={}),
}


def _unknown(name: str, known: Iterable[str], what: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {name!r}{hint}; {what} fields are {known}"


def _depth_exceeds(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, (dict, list)):
            if d > limit:
                return True
            stack.extend((v, d + 1) for v in (x.values() if isinstance(x, dict) else x))
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def parse_json(text: str, where: str) -> Any:
    """`json.loads` with errors as `TaskPackError`s: position, NaN/Infinity, duplicate keys, nesting depth."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        pos = (
            f"line {exc.lineno} column {exc.colno}" if "\n" in text.rstrip("\r\n") else f"column {exc.colno}"
        )
        raise TaskPackError(f"{where}: not valid JSON ({exc.msg} at {pos})") from None
    except RecursionError:
        raise TaskPackError(f"{where}: nested too deeply (more than {MAX_DEPTH} levels allowed)") from None
    except ValueError as exc:
        raise TaskPackError(f"{where}: not valid JSON ({exc})") from None
    if _depth_exceeds(obj, MAX_DEPTH):
        raise TaskPackError(f"{where}: nested too deeply (more than {MAX_DEPTH} levels allowed)")
    return obj


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = raw[:start].count(b"\n") + 1
        col = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        pos = f"line {line} column {col}" if line > 1 else f"column {col}"
        hint = " (it looks gzip-compressed: name it .jsonl.gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise TaskPackError(f"{where}: not valid UTF-8 (byte {raw[start]:#04x} at {pos}){hint}") from None


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a `.jsonl` or `.jsonl.gz` file with their numbers; bad bytes become `TaskPackError`s."""
    if path.is_dir():
        raise TaskPackError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise TaskPackError(f"{path}: does not exist")
    gz = path.name.endswith(".gz")
    lineno = 0
    try:
        f = gzip.open(path, "rb") if gz else open(path, "rb")
        with f:
            for lineno, raw in enumerate(f, 1):
                if lineno == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                text = _decode(raw, f"{path}:{lineno}")
                if text.strip():
                    yield lineno, text
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        after = f" after line {lineno}" if lineno else ""
        raise TaskPackError(f"{path}: not a valid gzip file ({exc}){after}") from None
    except OSError as exc:
        raise TaskPackError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def inside(root: Path, relative: Any, what: str, folder: str = "the task pack folder") -> Path:
    """`relative` resolved under `root` (symlinks followed); a `TaskPackError` if it is absolute or leaves root."""
    if not isinstance(relative, str) or not relative.strip():
        raise TaskPackError(f"{what}: expected a relative path, got {relative!r:.60}")
    if Path(relative).is_absolute():
        raise TaskPackError(f"{what}: {relative!r} is absolute; paths are relative to {folder} {root}")
    base = root.resolve()
    p = (base / relative).resolve()
    if p != base and base not in p.parents:
        raise TaskPackError(f"{what}: {relative!r} leaves {folder} {root}")
    return p


class TaskPack:
    """A loaded task pack. Splits are read (and validated) on first use."""

    def __init__(self, root: Path, manifest: dict[str, Any], fields: Mapping[str, Field] | None = None):
        self.root = root
        self.manifest = manifest
        self.schema = as_schema(fields, manifest.get("family", ""))
        self.fields = dict(self.schema or {})
        self._splits: dict[str, list[dict[str, Any]]] = {}
        self._context: Any = None
        self._prepared = False
        if self.schema is not None:
            check_fields(
                manifest, {**MANIFEST_FIELDS, **self.schema.manifest}, str(root / MANIFEST), "manifest"
            )

    name = property(lambda self: self.manifest["name"])
    version = property(lambda self: self.manifest["version"])
    family = property(lambda self: self.manifest["family"])

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def __repr__(self) -> str:
        return f"TaskPack({self.name!r} v{self.version}, family={self.family!r}, splits={self.splits}, root={str(self.root)!r})"

    @property
    def context(self) -> Any:
        """What the family's `prepare` made of the pack (e.g. its catalog), made once."""
        if not self._prepared and self.schema is not None and self.schema.prepare is not None:
            where = str(self.root / MANIFEST)
            try:
                self._context = self.schema.prepare(self)
            except TaskPackError:
                raise
            except (FieldError, TurngymError, ValueError, KeyError, TypeError, OSError) as exc:
                raise TaskPackError(f"{where}: {exc}") from exc
        self._prepared = True
        return self._context

    def tasks(self, split: str) -> list[dict[str, Any]]:
        """All task records of `split`, validated."""
        if split not in self.manifest["splits"]:
            raise TaskPackError(
                f"task pack {self.name!r} has no split {split!r}; its splits are {self.splits} ({self.root / MANIFEST})"
            )
        if split not in self._splits:
            self._splits[split] = self._load_split(split)
        return self._splits[split]

    def task_ids(self, split: str) -> list[str]:
        return [t["task_id"] for t in self.tasks(split)]

    def get(self, task_id: str, split: str | None = None) -> dict[str, Any]:
        """The record with `task_id`, searched in `split` (or in every split)."""
        for s in [split] if split else self.splits:
            for t in self.tasks(s):
                if t["task_id"] == task_id:
                    return t
        where = f"split {split!r}" if split else f"splits {self.splits}"
        raise TaskPackError(f"task pack {self.name!r} has no task_id {task_id!r} in {where}")

    def path(self, relative: str, what: str = "asset path") -> Path:
        """An asset path, relative to the pack folder; refuses paths that leave the pack."""
        return inside(self.root, relative, what)

    def _load_split(self, split: str) -> list[dict[str, Any]]:
        file = inside(self.root, self.manifest["splits"][split], f"{self.root / MANIFEST}: split {split!r}")
        context = self.context
        records: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for lineno, line in read_lines(file):
            where = f"{file}:{lineno}"
            rec = parse_json(line, where)
            if not isinstance(rec, dict):
                raise TaskPackError(f"{where}: a task record must be a JSON object, got {type(rec).__name__}")
            tid = rec.get("task_id")
            if not isinstance(tid, str) or not tid.strip():
                raise TaskPackError(f"{where}: record has no 'task_id' (a non-empty string), got {tid!r:.60}")
            if tid in seen:
                raise TaskPackError(f"{where}: record {tid!r}: duplicate task_id (first on line {seen[tid]})")
            seen[tid] = lineno
            if self.schema is not None:
                self._check_record(rec, context, f"{where}: record {tid!r}")
            records.append(rec)
        if not records:
            raise TaskPackError(f"{file}: split {split!r} of task pack {self.name!r} has no task records")
        return records

    def _check_record(self, rec: dict[str, Any], context: Any, where: str) -> None:
        assert self.schema is not None
        check_fields(rec, {"task_id": Field(str), **self.schema.fields}, where, f"{self.family} record")
        if self.schema.check is None:
            return
        try:
            self.schema.check(rec, context)
        except TaskPackError as exc:
            raise TaskPackError(f"{where}: {exc}") from None
        except (FieldError, TurngymError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            msg = str(exc) if isinstance(exc, (FieldError, TurngymError, ValueError)) else repr(exc)
            raise TaskPackError(f"{where}: {msg}") from exc


def check_fields(obj: Mapping[str, Any], fields: Mapping[str, Field], where: str, what: str) -> None:
    """Every key of `obj` is one of `fields` with the right type, and every required field is there."""
    for name, value in obj.items():
        if name not in fields:
            raise TaskPackError(f"{where}: {_unknown(name, fields, what)}")
        problem = fields[name].check(value)
        if problem:
            raise TaskPackError(f"{where}: field {name!r}: {problem}")
    for name, spec in fields.items():
        if spec.required and name not in obj:
            raise TaskPackError(f"{where}: missing field {name!r} ({spec.doc or 'required'})")


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the pack folder `root`, with the fields every pack has checked (a family's are checked when
    the pack is loaded with its schema)."""
    root = Path(root)
    mf = root / MANIFEST
    if mf.is_dir():
        raise TaskPackError(f"{mf}: is a folder, not a file")
    if not mf.is_file():
        raise TaskPackError(f"{root} is not a task pack: it has no {MANIFEST}")
    try:
        data = mf.read_bytes()
    except OSError as exc:
        raise TaskPackError(f"{mf}: cannot be read ({exc.strerror or exc})") from None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    manifest = parse_json(_decode(data, str(mf)), str(mf))
    if not isinstance(manifest, dict):
        raise TaskPackError(f"{mf}: the manifest must be a JSON object, got {type(manifest).__name__}")
    for key, spec in MANIFEST_FIELDS.items():
        if key not in manifest:
            if spec.required:
                raise TaskPackError(f"{mf}: missing field {key!r} ({spec.doc})")
            continue
        problem = spec.check(manifest[key])
        if problem:
            raise TaskPackError(f"{mf}: field {key!r}: {problem}")
    for key in ("name", "version", "family"):
        if not manifest[key].strip():
            raise TaskPackError(f"{mf}: field {key!r} is empty")
    sv = manifest.setdefault("schema_version", SCHEMA_VERSION)
    if sv != SCHEMA_VERSION:
        raise TaskPackError(
            f"{mf}: field 'schema_version': this turngym reads version {SCHEMA_VERSION}, got {sv!r}"
        )
    if not manifest["splits"]:
        raise TaskPackError(f"{mf}: field 'splits': a pack needs at least one split")
    for split, fname in manifest["splits"].items():
        what = f"{mf}: field 'splits.{split}'"
        if not split.strip():
            raise TaskPackError(f"{mf}: field 'splits': a split name is empty")
        inside(root, fname, what)
        if not fname.endswith(SPLIT_SUFFIXES):
            raise TaskPackError(f"{what}: {fname!r} is not a .jsonl or .jsonl.gz file")
    return manifest


def write_pack(
    root: str | Path, manifest: Mapping[str, Any], splits: Mapping[str, Iterable[Mapping[str, Any]]]
) -> Path:
    """Writes a task-pack folder `root` (created if needed): `<split>.jsonl` per split, one JSON record a line, and
    `manifest.json`: `manifest` with `splits` naming those files, the format's fields first in `MANIFEST_FIELDS`'
    order, then the family's, indented, ending in a newline. Existing files of the same names are replaced. Returns
    `root`; `load_pack(root)` reads it back.

        write_pack(out / "pack", {"name": "mine", "version": "1.0.0", "family": "embodied"}, {"test": records})
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, records in splits.items():
        files[split] = f"{split}.jsonl"
        (root / files[split]).write_text("".join(json.dumps(r) + "\n" for r in records))
    full = {**manifest, "splits": files}
    ordered = {k: full[k] for k in MANIFEST_FIELDS if k in full}
    ordered.update(full)
    (root / MANIFEST).write_text(json.dumps(ordered, indent=2) + "\n")
    return root


_EP_CACHE: dict[str, Path] | None = None


def _entry_point_dirs(refresh: bool = False) -> dict[str, Path]:
    """Packs from the `turngym.tasks` entry points (scanned once per process; ~60 ms a scan)."""
    global _EP_CACHE
    if _EP_CACHE is not None and not refresh:
        return _EP_CACHE
    out: dict[str, Path] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken pack stops the scan with its entry point named (no silent skip)
            raise TaskPackError(
                f"task-pack entry point {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc
        if callable(obj):
            obj = obj()
        path = Path(obj.__file__).parent if hasattr(obj, "__file__") else Path(obj)
        out[ep.name] = path
    _EP_CACHE = out
    return out


def find_packs(refresh: bool = False) -> dict[str, Path]:
    """Every installed pack by name: built-in ones and those from the `turngym.tasks` entry points.

    Entry points are scanned once per process; `refresh=True` rescans (after installing a pack at run time).
    """
    packs = {}
    for mf in sorted(BUILTIN_DIR.glob(f"*/{MANIFEST}")):
        try:
            packs[read_manifest(mf.parent)["name"]] = mf.parent
        except TaskPackError:
            packs[mf.parent.name] = mf.parent
    packs.update(_entry_point_dirs(refresh))
    return packs


_CACHE: dict[tuple, TaskPack] = {}


def _stamp(root: Path) -> tuple:
    """Modification times of the pack's files: a changed pack is reloaded, an unchanged one is not re-read."""
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir() if p.is_file()))
    except OSError as exc:
        raise TaskPackError(
            f"task pack folder {str(root)!r} cannot be read ({exc.strerror or exc})"
        ) from None


def _load(
    root: Path, fields: Mapping[str, Field] | None, family: str | None, fresh: bool = False
) -> TaskPack:
    key = (root, _stamp(root), id(fields) if fields is not None else None)
    if fresh or key not in _CACHE:
        manifest = read_manifest(root)
        _check_family(manifest, root, family)
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = TaskPack(root, manifest, fields)
    tp = _CACHE[key]
    _check_family(tp.manifest, root, family)
    return tp


def _check_family(manifest: Mapping[str, Any], root: Path, family: str | None) -> None:
    if family is not None and manifest["family"] != family:
        raise TaskPackError(
            f"task pack {manifest['name']!r} ({root}) is for the env family {manifest['family']!r}, not {family!r}"
        )


def load_pack(
    pack: str | Path,
    family: str | None = None,
    fields: Mapping[str, Field] | None = None,
    fresh: bool = False,
) -> TaskPack:
    """Load a pack by name (built-in or entry point) or by folder path.

    `family`, when given, must match the manifest's; `fields` (a `TaskSchema` or a dict of `Field`s) are the
    family's declarations every record is checked against when its split is read.
    """
    path = Path(pack).expanduser()
    builtin = BUILTIN_DIR / str(pack)
    by_name = not (isinstance(pack, Path) or path.is_dir() or "/" in str(pack))
    if by_name and (builtin / MANIFEST).is_file():
        path = builtin  # fast path: a built-in pack's folder is named after the pack
    elif by_name:
        known = find_packs()
        if str(pack) not in known:
            raise TaskPackError(
                f"unknown task pack {str(pack)!r}; installed packs: {sorted(known)} (or pass a folder path)"
            )
        path = known[str(pack)]
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise TaskPackError(f"task pack folder {str(path)!r} {what}")
    return _load(path.resolve(), fields, family, fresh)


def family_schema(family: str) -> TaskSchema:
    """The `TaskSchema` an env family loads its packs with: the `task_fields` of its env class (a turngym id, or
    a `TurnEnv` class registered with Gymnasium)."""
    import importlib

    from turngym.registration import ENVS

    for e in ENVS:
        if e.family != family:
            continue
        module, _, cls_name = e.entry_point.partition(":")
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except ImportError as exc:
            raise TaskPackError(
                f"cannot check packs of the env family {family!r}: its env needs turngym[{e.extra}] ({exc})"
            ) from None
        return as_schema(cls.task_fields, family)  # type: ignore[return-value]
    # envs registered with Gymnasium by other packages, by class
    import gymnasium as gym

    from turngym.envs.core import TurnEnv

    known = {e.family for e in ENVS}
    for spec in list(gym.registry.values()):
        cls = spec.entry_point
        if isinstance(cls, type) and issubclass(cls, TurnEnv):
            plays = cls.pack_family or cls.family
            known.add(plays)
            if plays == family:
                return as_schema(cls.task_fields, family)  # type: ignore[return-value]
    raise TaskPackError(f"unknown env family {family!r}; known families: {sorted(known)}")


def validate_pack(pack: str | Path, fields: Mapping[str, Field] | None = None) -> dict[str, int]:
    """Load every split of a pack exactly as an env does (the family's schema and checks unless `fields` is
    given). Returns the number of tasks per split; raises `TaskPackError` on the first problem."""
    if fields is None:
        family = load_pack(pack).family
        fields = family_schema(family)
    tp = load_pack(pack, fields=fields, fresh=True)
    return {split: len(tp.tasks(split)) for split in tp.splits}
