"""The WebShop store over real HTTP (stdlib `ThreadingHTTPServer`): HTML pages of the same `Store` as the text env.

URL scheme (every page URL carries the session id, as WebShop's `/<session_id>/...` routes do, and the whole page
state, so the browser's back button and reloads work and sessions cannot see each other):

    POST /api/sessions                      {"task_id", "session_id", "split": each optional} -> {"session_id", "url", ...}
    GET  /<sid>/                            search page (ids `fixed_<n>` auto-create a session on task n, like WebShop)
    GET  /<sid>/search?q=QUERY&page=N       results, 10 per page
    GET  /<sid>/item/<asin>?q=&page=&opt=NAME:VALUE (repeatable)      item page with option buttons
    GET  /<sid>/item/<asin>/<description|features|reviews>?q=&page=&opt=...
    POST /<sid>/buy/<asin>?opt=...          buy (GET works too); ends the session and computes the WebShop reward
    GET  /api/sessions/<sid>                JSON: task_id, instruction, done, reward, purchased asin/options, parts
    DELETE /api/sessions/<sid>              forget a session

Every clickable element is an `<a>` or `<button>` whose text is the WebShop label (`Back to Search`, `< Prev`,
`Next >`, the asin, option values, `Description`, `Features`, `Reviews`, `Buy Now`), so a browser agent's
`click[...]` maps one-to-one onto the text env. Run one with
`python -m turngym.envs.shopping.server --port 3000 --split test`.

Every request is checked at the boundary before any state changes (`_Handler.handle_one_request`): request line,
headers, body framing and size, URL encoding, query fields, JSON fields, session ids. A malformed request gets a 4xx
(405/501 for methods) with a message naming what was wrong, and its connection is closed. The limits are the
module constants below; a whole request must arrive within `ShopServer(timeout=...)` seconds.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote_to_bytes, urlencode, urlsplit

from turngym.envs.shopping.catalog import load_catalog
from turngym.envs.shopping.reward import webshop_reward
from turngym.envs.shopping.store import BUY, SUBPAGES, Page, Store
from turngym.envs.shopping.text_env import TASK_FIELDS, lexicon_for, store_for
from turngym.errors import ConfigError
from turngym.tasks.pack import load_pack

log = logging.getLogger(__name__)

MAX_SESSIONS = 10_000
MAX_REQUEST_LINE = 8192  # bytes of `METHOD target HTTP/1.1`; longer: 414
MAX_HEADER_BYTES = 16384  # all header lines together; more (or over 100 lines): 431
MAX_BODY = 65536  # request body bytes, with Content-Length or chunked; more: 413
MAX_QUERY_FIELDS = 64  # name=value pairs in a query string
MAX_QUERY_CHARS = 500  # a search query (`q`), after decoding
MAX_TASK_ID_CHARS = 200
MAX_CONNECTIONS = 256  # connections served at once; more are answered 503 and closed
DEFAULT_TIMEOUT = 10.0  # seconds for a whole request to arrive (and for an idle keep-alive connection)

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSION_ID_RULE = "1-64 characters from A-Z a-z 0-9 _ -"
_FIXED_ID = re.compile(r"fixed_(0|[1-9][0-9]{0,8})")
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,5}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) ([\x21-\x7e]+) (HTTP/[0-9.]{1,10})")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_METHODS = ("GET", "HEAD", "POST", "DELETE")
_OTHER_HTTP_METHODS = ("PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT")
_SESSION_FIELDS = ("task_id", "session_id", "split")
_PAGE_FIELDS = ("q", "page", "opt")


def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def check_session_id(sid: Any) -> str:
    """`sid` if it is a valid session id (`SESSION_ID`, not `api`); raises ConfigError naming the rule otherwise."""
    if not isinstance(sid, str):
        raise ConfigError(f"session_id must be a string, got {type(sid).__name__}")
    if not SESSION_ID.fullmatch(sid) or sid == "api":
        raise ConfigError(f"session_id {_short(sid)} is not valid: use {SESSION_ID_RULE} (not 'api')")
    return sid


def parse_target(target: str) -> tuple[list[str], dict[str, list[str]]]:
    """Path segments and query fields of a request target (`/a/b?x=1`) or a full `http(s)://` URL, percent-decoded
    as UTF-8. Raises ConfigError naming what is malformed (characters, percent-encoding, UTF-8, field count)."""
    if target.startswith(("http://", "https://")):
        u = urlsplit(target)
        if u.fragment:
            raise ConfigError("URL has a fragment ('#'): page URLs have none")
        path, query = u.path or "/", u.query
    elif target.startswith("/"):
        path, _, query = target.partition("?")
    else:
        raise ConfigError(f"request target {_short(target)} must be a path starting with '/'")
    bad = next((c for c in path + query if not "\x21" <= c <= "\x7e" or c == "#"), None)
    if bad is not None:
        raise ConfigError(f"URL has the character {bad!r}: percent-encode it")
    m = _BAD_PERCENT.search(path + "?" + query)
    if m:
        where = (path + "?" + query)[m.start() : m.start() + 3]
        raise ConfigError(f"bad percent-encoding {where!r} in URL: '%' must be followed by two hex digits")
    parts = []
    for seg in path.split("/"):
        if not seg:
            continue
        try:
            text = unquote_to_bytes(seg).decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"URL path segment {_short(seg)} is not UTF-8 after percent-decoding") from None
        if _CONTROL.search(text):
            raise ConfigError(f"URL path segment {_short(seg)} decodes to a control character")
        parts.append(text)
    try:
        qs = parse_qs(query, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except UnicodeDecodeError:
        raise ConfigError("query string is not UTF-8 after percent-decoding") from None
    except ValueError:
        raise ConfigError(f"query string has more than {MAX_QUERY_FIELDS} fields") from None
    for name, values in qs.items():
        if _CONTROL.search(name) or any(_CONTROL.search(v) for v in values):
            raise ConfigError(f"query field {_short(name)} has a control character")
    return parts, qs


@dataclass
class Session:
    sid: str
    task: dict[str, Any]
    done: bool = False
    reward: float | None = None
    purchased: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)
    pages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.sid,
            "task_id": self.task["task_id"],
            "instruction": self.task["instruction_text"],
            "done": self.done,
            "reward": self.reward,
            "success": self.reward is not None and self.reward >= 1.0 - 1e-9,
            "purchased": self.purchased,
            "reward_parts": self.parts,
            "pages_viewed": self.pages,
        }


def _page_url(sid: str, page: Page) -> str:
    q: list[tuple[str, str]] = []
    if page.query:
        q += [("q", page.query), ("page", str(page.page))]
    q += [("opt", f"{k}:{v}") for k, v in page.options]
    qs = ("?" + urlencode(q)) if q else ""
    base = f"/{quote(sid)}"
    if page.kind == "search":
        return f"{base}/"
    if page.kind == "results":
        return f"{base}/search{qs}"
    if page.kind == "item":
        return f"{base}/item/{quote(page.asin)}{qs}"
    if page.kind == "sub":
        return f"{base}/item/{quote(page.asin)}/{page.sub}{qs}"
    return f"{base}/buy/{quote(page.asin)}{qs}"


_CSS = (
    "body{font-family:sans-serif;max-width:60em;margin:1em auto}#instruction-text{background:#eef;padding:.5em}"
    ".result{margin:.4em 0}.opt{margin:.2em;padding:.2em .5em;border:1px solid #888;display:inline-block}"
    ".opt.selected{background:#333;color:#fff}a.btn{margin-right:1em}"
)


class ShopHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    request_queue_size = 256  # listen() backlog; the default 5 resets connections under a burst of clients

    def __init__(self, addr: tuple[str, int], shop: ShopServer):
        self.shop = shop
        self._slots = threading.BoundedSemaphore(shop.max_connections)
        self._refusals = threading.BoundedSemaphore(32)  # connections being answered 503 at once
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise
        elif self._refusals.acquire(blocking=False):
            threading.Thread(target=self._refuse, args=(request,), name="shop-busy", daemon=True).start()
        else:
            self.shutdown_request(request)

    def _refuse(self, request: socket.socket) -> None:
        """503 to a connection over `max_connections`, then a short drain so the close does not reset it."""
        msg = f"the store is serving {self.shop.max_connections} connections; retry shortly\n".encode()
        try:
            request.settimeout(1.0)
            request.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg)
            )
            _drain(request, 1.0)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
            self._refusals.release()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ShopServer:
    """A store for one task pack/split, served on `host:port` (port 0 picks a free one). Use as a context manager.

    `timeout`: seconds a whole request may take to arrive (and an idle keep-alive connection may stay open);
    `max_connections`: connections served at once (more are answered 503 and closed)."""

    def __init__(
        self,
        task_pack: str = "webshop-synth",
        split: str = "test",
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ):
        if not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections must be a positive integer, got {max_connections!r}")
        self.max_connections = max_connections
        self.pack = load_pack(task_pack, family="shopping", fields=TASK_FIELDS)
        self.split = split
        self.timeout = float(timeout)
        self.tasks = self.pack.tasks(split)
        self.catalog = load_catalog(self.pack.manifest.get("catalog"), self.pack.root)
        self.store: Store = store_for(self.catalog)
        self.lexicon = lexicon_for(self.catalog)
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.httpd = ShopHTTPServer((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ShopServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever, name="shop-http", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> ShopServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- sessions -----------------------------------------------------------------------------------------------
    def create_session(self, task_id: str | None = None, sid: str | None = None) -> Session:
        """A new session on `task_id` (default: the split's first task) with id `sid` (default: random hex).
        Raises ConfigError (and creates nothing) on an unknown task, an invalid or taken id, or a full store."""
        if task_id is None:
            task = self.tasks[0]
        else:
            if not isinstance(task_id, str):
                raise ConfigError(f"task_id must be a string, got {type(task_id).__name__}")
            task = next((t for t in self.tasks if t["task_id"] == task_id), None)
            if task is None:
                raise ConfigError(
                    f"split {self.split!r} of {self.pack.name!r} has no task_id {_short(task_id)}"
                )
        if sid is not None:
            check_session_id(sid)
        with self._lock:
            if len(self.sessions) >= MAX_SESSIONS:
                raise ConfigError(
                    f"too many sessions ({MAX_SESSIONS}); DELETE /api/sessions/<sid> finished ones"
                )
            sid = sid or secrets.token_hex(8)
            if sid in self.sessions:
                raise ConfigError(f"session {sid!r} exists")
            s = self.sessions[sid] = Session(sid, task)
        return s

    def fixed_task(self, sid: str) -> dict[str, Any] | None:
        """The task a WebShop-style id `fixed_<n>` (ASCII digits, no leading zero, n < number of tasks) stands for."""
        m = _FIXED_ID.fullmatch(sid)
        if m is None or int(m.group(1)) >= len(self.tasks):
            return None
        return self.tasks[int(m.group(1))]

    def get_session(self, sid: str, create: bool = True) -> Session | None:
        """The session `sid`; a `fixed_<n>` id not seen yet is created on task n when `create`."""
        with self._lock:
            s = self.sessions.get(sid)
        task = self.fixed_task(sid) if s is None and create else None
        if task is not None:
            try:
                return self.create_session(task["task_id"], sid)
            except ConfigError:
                with self._lock:
                    return self.sessions.get(sid)
        return s

    def buy(self, s: Session, page: Page) -> None:
        product = self.catalog[page.asin]
        reward, parts = webshop_reward(product, s.task, page.chosen, self.lexicon)
        s.done, s.reward, s.parts = True, reward, parts
        s.purchased = {"asin": page.asin, "options": page.chosen, "price": product.price}

    def parse_page(self, rest: list[str], qs: dict[str, list[str]]) -> Page | None:
        """The store `Page` a URL path (after `/<sid>`, split on `/`) and its parsed query string stand for; None
        when there is no such page. Raises ConfigError on an unknown query field, a repeated `q`/`page`, a query
        over `MAX_QUERY_CHARS`, a page number that is not 1-999999 in ASCII digits, or an unknown product/option."""
        unknown = sorted(set(qs) - set(_PAGE_FIELDS))
        if unknown:
            raise ConfigError(f"unknown query field {_short(unknown[0])} (pages take q, page, opt)")
        for name in ("q", "page"):
            if len(qs.get(name, [])) > 1:
                raise ConfigError(f"query field {name!r} given {len(qs[name])} times")
        q = (qs.get("q") or [""])[0].strip()
        if len(q) > MAX_QUERY_CHARS:
            raise ConfigError(f"search query has {len(q)} characters; at most {MAX_QUERY_CHARS}")
        raw_n = (qs.get("page") or ["1"])[0]
        if not _PAGE_NUMBER.fullmatch(raw_n):
            raise ConfigError(
                f"page must be a whole number 1-999999 in ASCII digits, got {_short(raw_n, 20)}"
            )
        n = int(raw_n)
        if not rest:
            return Page()
        if rest[0] == "search" and len(rest) == 1:
            if not q:
                return Page()
            total = len(self.store.results(q))
            return Page("results", q, min(n, self.store.n_pages(total)))
        if rest[0] in ("item", "buy") and len(rest) >= 2:
            asin = rest[1]
            if asin not in self.catalog:
                raise ConfigError(f"no product {_short(asin)}")
            product = self.catalog[asin]
            opts: dict[str, str] = {}
            for raw in qs.get("opt", []):
                name, _, value = raw.partition(":")
                if name not in product.options or value not in product.options[name]:
                    raise ConfigError(f"product {asin} has no option {_short(raw)} (expected NAME:VALUE)")
                opts[name] = value
            base = Page("item", q, n, asin, "", tuple(sorted(opts.items())))
            if rest[0] == "buy" and len(rest) == 2:
                return Page("done", base.query, base.page, asin, "", base.options)
            if rest[0] == "item" and len(rest) == 2:
                return base
            if rest[0] == "item" and len(rest) == 3 and rest[2] in SUBPAGES:
                return Page("sub", base.query, base.page, asin, rest[2], base.options)
        return None

    def page_from_url(self, url: str) -> tuple[str, Page | None]:
        """(session id, Page) of a page URL of this store (`/<sid>/...`); the Page is None for a non-store URL."""
        try:
            parts, qs = parse_target(url)
        except ConfigError:
            return "", None
        if not parts or parts[0] == "api":
            return "", None
        try:
            return parts[0], self.parse_page(parts[1:], qs)
        except ConfigError:
            return parts[0], None

    # ---- HTML ---------------------------------------------------------------------------------------------------
    def render(self, s: Session, page: Page) -> str:
        e = html.escape
        st = self.store
        sid = s.sid
        body = [f'<div id="instruction-text"><h4>Instruction:<br>{e(s.task["instruction_text"])}</h4></div>']
        back = f'<a class="btn" id="back-to-search" href="/{quote(sid)}/">Back to Search</a>'
        if page.kind == "search":
            body.append(
                f'<form method="get" action="/{quote(sid)}/search"><input id="search_input" name="q" '
                'placeholder="Search..." autofocus><button type="submit" id="search-button">Search</button></form>'
            )
        elif page.kind == "results":
            shown, total = st.page_results(page)
            nav = [back, f"<span>Page {page.page} (Total results: {total})</span>"]
            if page.page > 1:
                nav.append(
                    f'<a class="btn" id="prev" href="{e(_page_url(sid, Page("results", page.query, page.page - 1)))}">&lt; Prev</a>'
                )
            if page.page < st.n_pages(total):
                nav.append(
                    f'<a class="btn" id="next" href="{e(_page_url(sid, Page("results", page.query, page.page + 1)))}">Next &gt;</a>'
                )
            body.append("<div>" + " ".join(nav) + "</div>")
            for a in shown:
                p = self.catalog[a]
                link = _page_url(sid, Page("item", page.query, page.page, a))
                body.append(
                    f'<div class="result"><a class="product-link" href="{e(link)}">{e(a)}</a> '
                    f'<span class="title">{e(p.title)}</span> <span class="price">${p.price:.2f}</span></div>'
                )
            if not shown:
                body.append("<p>No results.</p>")
        elif page.kind in ("item", "sub"):
            p = self.catalog[page.asin]
            prev = (
                Page("results", page.query, page.page)
                if page.kind == "item"
                else Page("item", page.query, page.page, page.asin, "", page.options)
            )
            body.append(
                f'<div>{back} <a class="btn" id="prev" href="{e(_page_url(sid, prev))}">&lt; Prev</a></div>'
            )
            if page.kind == "sub":
                body.append(
                    f'<div id="{page.sub}">{e(st.sub_text(p, page.sub)).replace(" [SEP] ", "<br>")}</div>'
                )
            else:
                body.append(
                    f'<h2 id="product-title">{e(p.title)}</h2><div id="product-price">Price: ${p.price:.2f}</div>'
                )
                body.append(f'<div id="product-rating">Rating: {p.rating if p.reviews else "N.A."}</div>')
                chosen = page.chosen
                for name, values in p.options.items():
                    btns = []
                    for v in values:
                        nxt = st.choose(page, v.lower())
                        cls = "opt selected" if chosen.get(name) == v else "opt"
                        btns.append(
                            f'<a class="{cls}" name="{e(name)}" href="{e(_page_url(sid, nxt))}">{e(v)}</a>'
                        )
                    body.append(f'<div class="option-group"><b>{e(name)}</b> ' + " ".join(btns) + "</div>")
                subs = " ".join(
                    f'<a class="btn" id="{sp}" href="{e(_page_url(sid, Page("sub", page.query, page.page, page.asin, sp, page.options)))}">{sp.title()}</a>'
                    for sp in SUBPAGES
                )
                body.append(f"<div>{subs}</div>")
                buy = _page_url(sid, Page("done", page.query, page.page, page.asin, "", page.options))
                body.append(
                    f'<form method="post" action="{e(buy)}"><button id="buy-now" type="submit">{BUY.title()}</button></form>'
                )
        else:
            body.append(
                f'<h2>Thank you for shopping with us!</h2><div id="reward">Your score (min 0.0, max 1.0): '
                f'<span id="reward-value">{s.reward:.4f}</span></div>'
                f'<div id="purchased-asin">{e(page.asin)}</div>'
            )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>WebShop</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>"
        )


def _drain(conn: socket.socket, seconds: float) -> None:
    """After a refusal: stop sending, then read and drop what the client still sends for up to `seconds`, so the
    close does not reset the connection (discarding the refusal) before the client has read it."""
    end = time.monotonic() + seconds
    dropped = 0
    try:
        conn.shutdown(socket.SHUT_WR)
        while dropped < 4 * MAX_BODY and (left := end - time.monotonic()) > 0:
            conn.settimeout(left)
            chunk = conn.recv(65536)
            if not chunk:
                break
            dropped += len(chunk)
    except OSError:
        pass


class _Reject(Exception):
    """A request refused with an HTTP status and a message saying what was wrong."""

    def __init__(self, status: int, message: str, allow: tuple[str, ...] = ()):
        super().__init__(message)
        self.status = int(status)
        self.allow = allow


class _Reader:
    """Reads one request from a connection's buffered file; the whole request must arrive by one deadline, so a
    client sending a byte at a time cannot hold the connection longer than `seconds`."""

    def __init__(self, conn: socket.socket, rfile: Any, seconds: float):
        self.conn, self.rfile, self.seconds = conn, rfile, seconds
        self.end = time.monotonic() + seconds
        self.received = 0

    def _buffered(self) -> bytes:
        left = self.end - time.monotonic()
        if left <= 0:
            raise _Reject(HTTPStatus.REQUEST_TIMEOUT, f"request not received within {self.seconds:g} s")
        self.conn.settimeout(left)
        try:
            return self.rfile.peek(1)  # at most one recv, bounded by the time left
        except TimeoutError:
            raise _Reject(
                HTTPStatus.REQUEST_TIMEOUT, f"request not received within {self.seconds:g} s"
            ) from None

    def readline(self, limit: int, too_long: _Reject) -> bytes:
        """A line with its b"\\n"; shorter (no newline) at end of stream; raises `too_long` past `limit` bytes."""
        out = bytearray()
        while True:
            if len(out) >= limit:
                raise too_long
            chunk = self._buffered()
            if not chunk:
                return bytes(out)
            i = chunk.find(b"\n", 0, limit - len(out))
            n = i + 1 if i >= 0 else min(len(chunk), limit - len(out))
            out += self.rfile.read(n)
            self.received += n
            if i >= 0:
                return bytes(out)

    def read(self, n: int) -> bytes:
        """`n` bytes, or fewer when the stream ends first."""
        out = bytearray()
        while len(out) < n:
            if not self._buffered():
                break
            chunk = self.rfile.read1(n - len(out))
            self.received += len(chunk)
            out += chunk
        return bytes(out)


class _HeaderLines:
    """The file `http.client.parse_headers` reads from: lines of the header section, `MAX_HEADER_BYTES` in all."""

    def __init__(self, reader: _Reader):
        self.reader, self.left = reader, MAX_HEADER_BYTES

    def readline(self, size: int = -1) -> bytes:
        too_long = _Reject(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request headers are over {MAX_HEADER_BYTES} bytes"
        )
        line = self.reader.readline(self.left, too_long)
        if not line.endswith(b"\n"):
            raise _Reject(
                HTTPStatus.BAD_REQUEST, "request ended inside its headers (no blank line after them)"
            )
        self.left -= len(line)
        return line


class _Handler(BaseHTTPRequestHandler):
    server: ShopHTTPServer
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"
    _linger = False

    def finish(self) -> None:
        super().finish()
        if self._linger:
            _drain(self.connection, min(1.0, self.server.shop.timeout))

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    # ---- responses ----------------------------------------------------------------------------------------------
    def _send(
        self, status: int, body: str, ctype: str = "text/html; charset=utf-8", allow: tuple[str, ...] = ()
    ) -> None:
        data = body.encode("utf-8")
        self.connection.settimeout(
            self.server.shop.timeout
        )  # bounds the write to a client that does not read
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", ", ".join(allow))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj), "application/json")

    def _fail(self, status: int, msg: str, allow: tuple[str, ...] = ()) -> None:
        """Answer an error in the route's format (JSON for /api/, HTML for pages, text before the route is known)
        and close the connection: the rest of a refused request is never read."""
        self.close_connection = True
        self._linger = True
        try:
            if self._kind == "api":
                self._send(status, json.dumps({"error": msg}), "application/json", allow)
            elif self._kind == "html":
                page = f"<!doctype html><html><body><h1>{status}</h1><p id='error'>{html.escape(msg)}</p></body></html>"
                self._send(status, page, allow=allow)
            else:
                self._send(status, msg + "\n", "text/plain; charset=utf-8", allow)
        except OSError:
            pass  # the client is gone

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # the base class's own refusals (e.g. over 100 header lines) in the same format as ours
        self._fail(code, "; ".join(x for x in (message, explain) if x) or HTTPStatus(code).phrase)

    # ---- reading and checking a request -------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        self.command, self.path, self.request_version, self.requestline = "", "", "HTTP/1.1", ""
        self.close_connection = True
        self._kind = "text"
        self._framing: tuple[str, int] = ("length", 0)
        reader = _Reader(self.connection, self.rfile, self.server.shop.timeout)
        try:
            try:
                if not self._read_request_line(reader):
                    return
            except _Reject as exc:
                if reader.received == 0 and exc.status == HTTPStatus.REQUEST_TIMEOUT:
                    return  # an idle keep-alive connection: close it quietly
                raise
            saved, self.rfile = self.rfile, _HeaderLines(reader)
            try:
                if not self.parse_request():
                    return  # answered by send_error
            finally:
                self.rfile = saved
            self._check_head()
            body = self._read_body(reader)
            self._route(body)
            self.wfile.flush()
        except _Reject as exc:
            self._fail(exc.status, str(exc), exc.allow)
        except OSError:
            self.close_connection = True  # reset by the client, or a write timed out

    def _read_request_line(self, reader: _Reader) -> bool:
        too_long = _Reject(HTTPStatus.REQUEST_URI_TOO_LONG, f"request line is over {MAX_REQUEST_LINE} bytes")
        for _ in range(8):  # a few stray blank lines before a request are allowed (RFC 9112 2.2)
            raw = reader.readline(MAX_REQUEST_LINE + 2, too_long)
            if not raw:
                return False  # the client closed the connection
            if raw not in (b"\r\n", b"\n"):
                break
        else:
            raise _Reject(HTTPStatus.BAD_REQUEST, "blank lines instead of a request line")
        if not raw.endswith(b"\n"):
            raise _Reject(HTTPStatus.BAD_REQUEST, "request line ended without a line break")
        try:
            line = raw.decode("ascii").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError:
            raise _Reject(
                HTTPStatus.BAD_REQUEST, "request line is not ASCII: percent-encode the URL"
            ) from None
        m = _REQUEST_LINE.fullmatch(line)
        if m is None:
            raise _Reject(
                HTTPStatus.BAD_REQUEST,
                f"malformed request line {_short(line)}: expected 'METHOD /path HTTP/1.1'",
            )
        target = m.group(2)
        self._kind = "api" if re.match(r"(https?://[^/]*)?/api(/|\?|$)", target) else "html"
        if m.group(3) not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Reject(
                HTTPStatus.BAD_REQUEST, f"unsupported version {m.group(3)!r}: use HTTP/1.1 or HTTP/1.0"
            )
        self.raw_requestline = raw
        return True

    def handle_expect_100(self) -> bool:
        self._check_head()  # refuse a bad or too large body before asking the client to send it
        return super().handle_expect_100()

    def _check_head(self) -> None:
        """Headers, method and body framing; sets `self._framing` to ("length", n) or ("chunked", 0)."""
        h = self.headers
        if h.defects or h.get_payload():
            raise _Reject(HTTPStatus.BAD_REQUEST, "malformed header line: each must be 'Name: value'")
        for name, value in h.items():
            if not _TOKEN.fullmatch(name):
                raise _Reject(HTTPStatus.BAD_REQUEST, f"malformed header name {_short(name)}")
            if _HEADER_VALUE_BAD.search(value):
                raise _Reject(
                    HTTPStatus.BAD_REQUEST, f"header {name!r} has a control character or a folded line"
                )
        if self.request_version == "HTTP/1.1" and len(h.get_all("Host") or []) != 1:
            raise _Reject(HTTPStatus.BAD_REQUEST, "an HTTP/1.1 request needs exactly one Host header")
        if self.command not in _METHODS:
            if self.command in _OTHER_HTTP_METHODS:
                raise _Reject(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not allowed here", _METHODS
                )
            raise _Reject(HTTPStatus.NOT_IMPLEMENTED, f"unknown method {_short(self.command, 32)}", _METHODS)
        te = h.get_all("Transfer-Encoding") or []
        cl = h.get_all("Content-Length") or []
        if te:
            if cl:
                raise _Reject(
                    HTTPStatus.BAD_REQUEST, "a request may not have both Content-Length and Transfer-Encoding"
                )
            codings = [c.strip().lower() for v in te for c in v.split(",")]
            if codings != ["chunked"]:
                raise _Reject(
                    HTTPStatus.BAD_REQUEST,
                    f"Transfer-Encoding {_short(', '.join(te))} is not supported: send Content-Length or 'chunked'",
                )
            if self.request_version != "HTTP/1.1":
                raise _Reject(HTTPStatus.BAD_REQUEST, "a chunked body needs HTTP/1.1")
            self._framing = ("chunked", 0)
            return
        values = {v.strip() for header in cl for v in header.split(",")}
        if len(values) > 1:
            raise _Reject(HTTPStatus.BAD_REQUEST, f"conflicting Content-Length values {sorted(values)}")
        if values:
            v = values.pop()
            if not re.fullmatch(r"[0-9]{1,15}", v):
                raise _Reject(
                    HTTPStatus.BAD_REQUEST,
                    f"Content-Length must be a whole number of bytes, got {_short(v, 30)}",
                )
            if int(v) > MAX_BODY:
                raise _Reject(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"request body of {int(v)} bytes is over {MAX_BODY} bytes",
                )
            self._framing = ("length", int(v))

    def _read_body(self, reader: _Reader) -> bytes:
        kind, n = self._framing
        if kind == "length":
            data = reader.read(n)
            if len(data) < n:
                raise _Reject(HTTPStatus.BAD_REQUEST, f"request body ended after {len(data)} of {n} bytes")
            return data
        out = bytearray()
        line_too_long = _Reject(HTTPStatus.BAD_REQUEST, "chunk size line is over 1024 bytes")
        while True:
            line = reader.readline(1024, line_too_long)
            if not line.endswith(b"\n"):
                raise _Reject(HTTPStatus.BAD_REQUEST, "chunked body ended before its last (zero-size) chunk")
            size_text = line.rstrip(b"\r\n").split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
                raise _Reject(
                    HTTPStatus.BAD_REQUEST, f"bad chunk size {_short(size_text.decode('latin-1'), 20)}"
                )
            size = int(size_text, 16)
            if len(out) + size > MAX_BODY:
                raise _Reject(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"chunked request body is over {MAX_BODY} bytes"
                )
            if size == 0:
                break
            data = reader.read(size + 2)
            if len(data) < size + 2:
                raise _Reject(HTTPStatus.BAD_REQUEST, "chunked body ended inside a chunk")
            if data[size:] != b"\r\n":
                raise _Reject(HTTPStatus.BAD_REQUEST, "chunk data must be followed by CRLF")
            out += data[:size]
        for _ in range(32):  # trailer fields, then a blank line
            line = reader.readline(1024, line_too_long)
            if not line.endswith(b"\n"):
                raise _Reject(HTTPStatus.BAD_REQUEST, "chunked body ended before its final blank line")
            if line in (b"\r\n", b"\n"):
                return bytes(out)
        raise _Reject(HTTPStatus.BAD_REQUEST, "more than 32 trailer lines after a chunked body")

    def _session_request(self, body: bytes) -> dict[str, Any]:
        """The fields of a `POST /api/sessions` body (empty, or a JSON object of strings/nulls)."""
        if not body.strip():
            return {}
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject(HTTPStatus.BAD_REQUEST, f"request body is not UTF-8 (byte {exc.start})") from None

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in items:
                if k in out:
                    raise ValueError(f"duplicate key {_short(k)}")
                out[k] = v
            return out

        def constant(name: str) -> Any:
            raise ValueError(f"{name} is not JSON")

        try:
            obj = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
        except json.JSONDecodeError as exc:
            raise _Reject(
                HTTPStatus.BAD_REQUEST,
                f"request body is not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
            ) from None
        except RecursionError:
            raise _Reject(HTTPStatus.BAD_REQUEST, "request body JSON is nested too deeply") from None
        except ValueError as exc:
            raise _Reject(HTTPStatus.BAD_REQUEST, f"request body JSON: {str(exc)[:120]}") from None
        if not isinstance(obj, dict):
            raise _Reject(
                HTTPStatus.BAD_REQUEST, f"request body must be a JSON object, got {type(obj).__name__}"
            )
        unknown = sorted(set(obj) - set(_SESSION_FIELDS))
        if unknown:
            raise _Reject(
                HTTPStatus.BAD_REQUEST,
                f"unknown field {_short(unknown[0])} in request body (fields: {', '.join(_SESSION_FIELDS)})",
            )
        for name in _SESSION_FIELDS:
            v = obj.get(name)
            if v is not None and not isinstance(v, str):
                raise _Reject(
                    HTTPStatus.BAD_REQUEST, f"field {name!r} must be a string or null, got {type(v).__name__}"
                )
        if obj.get("task_id") is not None and len(obj["task_id"]) > MAX_TASK_ID_CHARS:
            raise _Reject(HTTPStatus.BAD_REQUEST, f"field 'task_id' is over {MAX_TASK_ID_CHARS} characters")
        sid = obj.get("session_id")
        if sid is not None:
            try:
                check_session_id(sid)
            except ConfigError as exc:
                raise _Reject(HTTPStatus.BAD_REQUEST, str(exc)) from None
            if sid.startswith("fixed_"):
                raise _Reject(HTTPStatus.BAD_REQUEST, "session ids fixed_<n> are made by opening /fixed_<n>/")
        split = self.server.shop.split
        if obj.get("split") not in (None, split):
            raise _Reject(
                HTTPStatus.BAD_REQUEST, f"this store serves split {split!r}, not {_short(obj['split'])}"
            )
        return obj

    # ---- routing ------------------------------------------------------------------------------------------------
    def _route(self, body: bytes) -> None:
        try:
            self._dispatch(body)
        except _Reject:
            raise
        except ConfigError as exc:
            raise _Reject(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except OSError:
            raise
        except Exception as exc:  # a bug must answer 500, not kill the connection silently
            log.exception("shop server error on %s", self.path[:200])
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _allow(self, *methods: str) -> None:
        if self.command not in methods:
            raise _Reject(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{self.command} is not allowed here (use {', '.join(methods)})",
                methods,
            )

    def _no_body(self, body: bytes) -> None:
        if body:
            raise _Reject(
                HTTPStatus.BAD_REQUEST,
                f"{self.command} {urlsplit(self.path).path[:80]} takes no request body",
            )

    def _dispatch(self, body: bytes) -> None:
        shop = self.server.shop
        parts, qs = parse_target(self.path)
        if parts[:1] == ["api"]:
            self._kind = "api"
            if parts[1:2] != ["sessions"] or len(parts) > 3:
                raise _Reject(HTTPStatus.NOT_FOUND, f"no API route {_short(urlsplit(self.path).path)}")
            if qs:
                raise _Reject(HTTPStatus.BAD_REQUEST, "API routes take no query string")
            if len(parts) == 2:
                self._allow("POST")
                req = self._session_request(body)
                s = shop.create_session(req.get("task_id"), req.get("session_id"))
                return self._json(HTTPStatus.CREATED, {**s.to_json(), "url": f"{shop.url}/{quote(s.sid)}/"})
            self._allow("GET", "HEAD", "DELETE")
            self._no_body(body)
            sid = parts[2]
            s = shop.get_session(sid, create=False)
            if s is None:
                raise _Reject(HTTPStatus.NOT_FOUND, f"no session {_short(sid)}")
            if self.command == "DELETE":
                with shop._lock:
                    shop.sessions.pop(s.sid, None)
                return self._json(HTTPStatus.OK, {"deleted": s.sid})
            return self._json(HTTPStatus.OK, s.to_json())
        self._kind = "html"
        if not parts:
            self._allow("GET", "HEAD")
            self._no_body(body)
            if qs:
                raise _Reject(HTTPStatus.BAD_REQUEST, "the index page takes no query string")
            return self._send(
                HTTPStatus.OK,
                "<!doctype html><p>turngym WebShop store: POST /api/sessions, then open /&lt;session_id&gt;/</p>",
            )
        sid = parts[0]
        s = shop.get_session(sid, create=False)
        if s is None and shop.fixed_task(sid) is None:
            rule = "" if SESSION_ID.fullmatch(sid) else f" (session ids are {SESSION_ID_RULE})"
            raise _Reject(
                HTTPStatus.NOT_FOUND, f"unknown session {_short(sid)}{rule}: POST /api/sessions first"
            )
        page = shop.parse_page(parts[1:], qs)
        if page is None:
            raise _Reject(HTTPStatus.NOT_FOUND, f"no page {_short(urlsplit(self.path).path)}")
        self._allow(*(("GET", "POST") if page.kind == "done" else ("GET", "HEAD")))
        self._no_body(body)
        if s is None:  # a valid request to a fixed_<n> id not seen yet
            s = shop.get_session(sid)
            if s is None:
                raise _Reject(
                    HTTPStatus.BAD_REQUEST, f"too many sessions ({MAX_SESSIONS}); cannot open {sid}"
                )
        with s.lock:
            if page.kind == "done":
                if s.done:
                    if s.purchased.get("asin") != page.asin or s.purchased.get("options") != page.chosen:
                        raise _Reject(HTTPStatus.CONFLICT, "this session has already bought something")
                else:
                    shop.buy(s, page)
            html_text = shop.render(s, page)
            s.pages += 1
        self._send(HTTPStatus.OK, html_text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve the WebShop store over HTTP.")
    ap.add_argument("--task-pack", default="webshop-synth")
    ap.add_argument("--split", default="test")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for a whole request to arrive"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    srv = ShopServer(args.task_pack, args.split, args.host, args.port, timeout=args.timeout)
    log.info(
        "WebShop store at %s (split %s, %d tasks); sessions fixed_0..fixed_%d",
        srv.url,
        args.split,
        len(srv.tasks),
        len(srv.tasks) - 1,
    )
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
