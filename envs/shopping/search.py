"""Full-text product search with BM25 ranking, as WebShop does with Pyserini/Lucene.

Six fields are indexed with boosts that favour the title: title 10, attributes 4, name (type) 6, category path 1,
features 1, description 0.5. A query is cut into `tokenize()` tokens (Lucene's English stop words dropped), the
first 32 distinct ones are OR-ed, and a search returns the top `top_k` (50) asins, best first; the store pages them
10 at a time. Recent results are cached (pages re-read them).

Two backends, chosen with `backend=` or `$TURNGYM_SEARCH_BACKEND`:

- `tantivy` (default): a Lucene-class inverted index (Rust). Fields hold the whitespace-joined `tokenize()` tokens
  and queries are built from term queries, so index and query tokenisation are the same and user text is never
  parsed as query syntax. The index is built once per catalog and kept on disk under
  `$TURNGYM_CACHE/search/` (default `~/.cache/turngym/search/`), keyed by the catalog digest; a checksummed
  manifest guards it (a damaged copy is rebuilt), and builds are atomic (temporary folder, then rename, under a
  file lock). Searches run without a lock, in parallel from many threads.
- `fts5`: SQLite FTS5 with `bm25()` and the same column weights, in memory, built at every start; one lock
  serialises its queries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import uuid
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

from turngym.envs.shopping.catalog import Catalog, Product
from turngym.errors import ConfigError

log = logging.getLogger(__name__)

TOP_K = 50
CACHE_SIZE = 2048
CLAUSE_CACHE_SIZE = 65536
MAX_QUERY_TOKENS = 32
BACKENDS = ("tantivy", "fts5")
DEFAULT_BACKEND = "tantivy"
_TOKEN = re.compile(r"[a-z0-9]+(?:[.%+][a-z0-9]+)*%?\+?")
# field name -> boost (WebShop's Pyserini weights): title, attributes, name (type), category path, features, description
FIELDS = ("title", "attributes", "name", "category", "features", "description")
_WEIGHTS = (10.0, 4.0, 6.0, 1.0, 1.0, 0.5)
BOOSTS = dict(zip(FIELDS, _WEIGHTS))
# bump when the indexed fields or their tokenisation change: old cached indexes are then not reused
INDEX_SCHEMA_VERSION = 1
MANIFEST = "turngym-index.json"


# Lucene's default English stop words (what WebShop's Pyserini index drops)
LUCENE_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without Lucene's English stop words."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in LUCENE_STOPWORDS]


def query_tokens(query: str, limit: int = MAX_QUERY_TOKENS) -> tuple[str, ...]:
    """The first `limit` distinct `tokenize()` tokens of `query` (stops scanning once it has them)."""
    out: dict[str, None] = {}
    for m in _TOKEN.finditer(query.lower()):
        t = m.group()
        if t not in LUCENE_STOPWORDS:
            out[t] = None
            if len(out) >= limit:
                break
    return tuple(out)


def product_fields(p: Product) -> tuple[str, str, str, str, str, str]:
    """The six indexed texts of a product, in `FIELDS` order."""
    return (
        p.title,
        " ; ".join(p.attributes),
        p.name,
        p.product_category,
        " ".join(p.features),
        p.description,
    )


def cache_root() -> Path:
    """Where built indexes are kept: `$TURNGYM_CACHE/search` (default `~/.cache/turngym/search`)."""
    base = os.environ.get("TURNGYM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "turngym"
    )
    return Path(base) / "search"


class SearchIndex:
    """BM25 search over one catalog: `search(query, top_k)` -> asins, best first. Subclasses rank token tuples."""

    backend = ""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._cache: OrderedDict[tuple[tuple[str, ...], int], list[str]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _rank(self, tokens: tuple[str, ...], top_k: int) -> list[int]:
        """Product positions of the best `top_k` matches of the OR of `tokens`, best first."""
        raise NotImplementedError

    def search(self, query: str, top_k: int = TOP_K) -> list[str]:
        """The top `top_k` asins for `query`, best first ([] when the query has no searchable word)."""
        if not isinstance(query, str):
            raise ConfigError(f"a search query must be a string, got {type(query).__name__}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
        tokens = query_tokens(query)
        if not tokens:
            return []
        key = (tokens, top_k)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return list(hit)
        products = self.catalog.products
        out = [products[i].asin for i in self._rank(tokens, top_k)]
        with self._cache_lock:
            self._cache[key] = out
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return list(out)

    def close(self) -> None:
        with self._cache_lock:
            self._cache.clear()


class FTS5Index(SearchIndex):
    """SQLite FTS5 `bm25()` over an in-memory table; one lock serialises queries (one connection)."""

    backend = "fts5"

    def __init__(self, catalog: Catalog):
        super().__init__(catalog)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(f"CREATE VIRTUAL TABLE docs USING fts5({', '.join(FIELDS)}, tokenize='unicode61')")
        self._db.executemany(
            "INSERT INTO docs(rowid, title, attributes, name, category, features, description) VALUES (?,?,?,?,?,?,?)",
            ((i, *product_fields(p)) for i, p in enumerate(catalog.products)),
        )
        self._db.commit()
        weights = ", ".join(map(str, _WEIGHTS))
        self._sql = f"SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, {weights}), rowid LIMIT ?"

    @staticmethod
    def match_expression(query: str) -> str:
        """The FTS5 MATCH expression for free text: quoted tokens joined with OR ('' when no token)."""
        return " OR ".join('"' + t.replace('"', '""') + '"' for t in query_tokens(query))

    def _rank(self, tokens: tuple[str, ...], top_k: int) -> list[int]:
        expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)
        with self._lock:
            return [r[0] for r in self._db.execute(self._sql, (expr, top_k)).fetchall()]

    def close(self) -> None:
        super().close()
        with self._lock:
            self._db.close()


def _tantivy():
    try:
        import tantivy
    except ImportError:
        raise ConfigError(
            "the tantivy search backend needs the `tantivy` package (pip install 'tantivy>=0.27'); "
            "or choose backend='fts5' / TURNGYM_SEARCH_BACKEND=fts5"
        ) from None
    return tantivy


class TantivyIndex(SearchIndex):
    """Tantivy BM25 over pre-tokenised fields, cached on disk per catalog digest; lock-free, thread-safe search.

    `cache_dir=None` uses `cache_root()`; `cache_dir=False` keeps the index in memory only. `self.loaded` says
    whether the index came from the disk cache."""

    backend = "tantivy"

    def __init__(self, catalog: Catalog, cache_dir: str | Path | None | bool = None):
        super().__init__(catalog)
        tv = _tantivy()
        self._tv = tv
        self.path: Path | None = None
        self.loaded = False
        sb = tv.SchemaBuilder()
        for f in FIELDS:
            sb.add_text_field(f, stored=False, tokenizer_name="whitespace", index_option="freq")
        sb.add_unsigned_field("pid", stored=False, indexed=False, fast=True)
        self._schema = sb.build()
        if cache_dir is False:
            index = tv.Index(self._schema)
            self._fill(index)
        else:
            root = cache_root() if cache_dir in (None, True) else Path(cache_dir)
            try:
                index = self._open_cached(root)
            except OSError as exc:
                log.warning("search index cache %s is unusable (%s); indexing in memory", root, exc)
                index = tv.Index(self._schema)
                self._fill(index)
        index.config_reader(reload_policy="manual")
        index.reload()
        self._index = index
        self._searcher = index.searcher()
        self._clauses: dict[str, list] = {}
        if self._searcher.num_docs != len(catalog):
            raise ConfigError(
                f"search index at {self.path} holds {self._searcher.num_docs} products, the catalog "
                f"{len(catalog)}: delete that folder"
            )

    # ---- building -----------------------------------------------------------------------------------------------
    def _fill(self, index) -> None:
        tv = self._tv
        writer = index.writer(heap_size=256_000_000, num_threads=1)
        for i, p in enumerate(self.catalog.products):
            doc = tv.Document()
            for f, text in zip(FIELDS, product_fields(p)):
                doc.add_text(f, " ".join(tokenize(text)))
            doc.add_unsigned("pid", i)
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()

    def cache_key(self) -> str:
        """Folder name of this catalog's index: the catalog digest, the schema version and tantivy's version."""
        h = hashlib.sha256(f"{self.catalog.digest()}|{INDEX_SCHEMA_VERSION}|{self._tv.__version__}".encode())
        return f"tantivy-{h.hexdigest()[:32]}"

    def _open_cached(self, root: Path):
        key = self.cache_key()
        final = root / key
        self.path = final
        if self._valid(final):
            self.loaded = True
            return self._tv.Index.open(str(final))
        root.mkdir(parents=True, exist_ok=True)
        import fcntl

        with open(root / f"{key}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per key; the others wait, then load its result
            try:
                if self._valid(final):
                    self.loaded = True
                    return self._tv.Index.open(str(final))
                for stale in root.glob(f".build-{key}-*"):
                    shutil.rmtree(stale, ignore_errors=True)
                if final.exists():
                    log.warning("search index cache %s is damaged or incomplete; rebuilding it", final)
                    trash = root / f".trash-{key}-{uuid.uuid4().hex[:8]}"
                    os.rename(final, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                tmp = root / f".build-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                tmp.mkdir()
                try:
                    index = self._tv.Index(self._schema, path=str(tmp))
                    self._fill(index)
                    del index
                    self._write_manifest(tmp)
                    os.rename(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return self._tv.Index.open(str(final))

    def _files(self, folder: Path) -> dict[str, list]:
        """[size, sha256] of every index file (lock files and the manifest excluded)."""
        out = {}
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.name != MANIFEST and not f.name.endswith(".lock"):
                h = hashlib.sha256()
                with open(f, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(block)
                out[f.name] = [f.stat().st_size, h.hexdigest()]
        return out

    def _write_manifest(self, folder: Path) -> None:
        manifest = {
            "catalog_digest": self.catalog.digest(),
            "products": len(self.catalog),
            "schema_version": INDEX_SCHEMA_VERSION,
            "tantivy": self._tv.__version__,
            "files": self._files(folder),
        }
        tmp = folder / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, folder / MANIFEST)

    def _valid(self, folder: Path) -> bool:
        """The folder holds a complete index of this catalog whose files match the manifest's checksums."""
        try:
            m = json.loads((folder / MANIFEST).read_text())
            return (
                isinstance(m, dict)
                and m.get("catalog_digest") == self.catalog.digest()
                and m.get("products") == len(self.catalog)
                and m.get("schema_version") == INDEX_SCHEMA_VERSION
                and m.get("tantivy") == self._tv.__version__
                and bool(m.get("files"))
                and m["files"] == self._files(folder)
            )
        except (OSError, ValueError):
            return False

    # ---- searching ----------------------------------------------------------------------------------------------
    def _token_clauses(self, token: str) -> list:
        """The six boosted term queries of one token (built once: making them costs more than the search)."""
        got = self._clauses.get(token)
        if got is None:
            q, should = self._tv.Query, self._tv.Occur.Should
            # term queries: tokens are matched verbatim, never parsed as query syntax
            got = [
                (should, q.boost_query(q.term_query(self._schema, f, token, index_option="freq"), w))
                for f, w in zip(FIELDS, _WEIGHTS)
            ]
            if len(self._clauses) >= CLAUSE_CACHE_SIZE:
                self._clauses.clear()
            self._clauses[token] = got
        return got

    def _rank(self, tokens: tuple[str, ...], top_k: int) -> list[int]:
        query = self._tv.Query.boolean_query([c for t in tokens for c in self._token_clauses(t)])
        hits = self._searcher.search(query, top_k, count=False).hits
        if not hits:
            return []
        pids = self._searcher.fast_field_values("pid", [addr for _, addr in hits])
        # equal scores: lower catalog position first, as the FTS5 backend orders by rowid
        ranked = sorted(zip(hits, pids), key=lambda hp: (-hp[0][0], hp[1]))
        return [pid for _, pid in ranked]


def resolve_backend(backend: str | None = None) -> str:
    """`backend`, else `$TURNGYM_SEARCH_BACKEND`, else the default; a clear error for an unknown name."""
    env = os.environ.get("TURNGYM_SEARCH_BACKEND")
    name = str(backend or env or DEFAULT_BACKEND).strip().lower()
    if name not in BACKENDS:
        where = "" if backend else " (from $TURNGYM_SEARCH_BACKEND)"
        raise ConfigError(f"unknown search backend {name!r}{where}: choose one of {', '.join(BACKENDS)}")
    return name


def open_index(
    catalog: Catalog, backend: str | None = None, cache_dir: str | Path | None | bool = None
) -> SearchIndex:
    """A new index of `catalog` with the chosen backend (`cache_dir` applies to tantivy)."""
    name = resolve_backend(backend)
    if name == "fts5":
        return FTS5Index(catalog)
    return TantivyIndex(catalog, cache_dir=cache_dir)


@lru_cache(maxsize=8)
def _shared(catalog: Catalog, backend: str) -> SearchIndex:
    return open_index(catalog, backend)


def index_for(catalog: Catalog, backend: str | None = None) -> SearchIndex:
    """One shared index per catalog object and backend (catalogs are themselves cached: once per process)."""
    return _shared(catalog, resolve_backend(backend))
