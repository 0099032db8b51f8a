"""Malformed requests against the real HTTP store on 127.0.0.1 over raw sockets, alone and while real episodes play.

Every refusal must be a 4xx (405/501 for methods) with a message, answered within the request deadline, with no
state changed; the oracle's episodes played through HTTP at the same time must end exactly as when played alone.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
import sys
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlencode

import pytest

from turngym.envs.shopping.expert import WebShopExpert
from turngym.envs.shopping.server import MAX_BODY, MAX_HEADER_BYTES, MAX_REQUEST_LINE, ShopServer
from turngym.envs.shopping.store import BUY, parse_action
from turngym.errors import ConfigError

TIMEOUT = 1.0  # the test store's request deadline
BOUND = TIMEOUT + 2.5  # every request must be answered within this many seconds
EPISODE_TASKS = (0, 3, 5, 8, 11, 14)


@pytest.fixture(scope="module")
def shop():
    srv = ShopServer("webshop-synth", split="test", timeout=TIMEOUT, max_connections=96).start()
    yield srv
    srv.close()


class Reply:
    def __init__(self, raw: bytes, elapsed: float):
        self.raw, self.elapsed = raw, elapsed  # seconds to the first byte of the answer
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", lines[0] + b" ")
        self.status = int(m.group(1)) if m else 0
        self.headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (ln.decode("latin-1").partition(":") for ln in lines[1:])
        }

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.elapsed:.2f}s, {self.raw[:300]!r})"


def exchange(shop: ShopServer, data: bytes, shut: bool = True, pieces: list[bytes] | None = None) -> Reply:
    """Send `data` (or `pieces`, 0.2 s apart, from a second thread) on a fresh connection; read until the server
    closes it. `shut`: half-close after sending, as a client that has sent its whole request."""
    host, port = shop.httpd.server_address[:2]
    t0 = time.monotonic()
    sock = socket.create_connection((host, port), timeout=BOUND + 5)

    def send() -> None:
        try:
            if pieces is None:
                sock.sendall(data)
            else:
                for p in pieces:
                    sock.sendall(p)
                    time.sleep(0.2)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused and closed first

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    buf, elapsed = b"", None
    try:
        while chunk := sock.recv(65536):
            elapsed = elapsed or time.monotonic() - t0
            buf += chunk
    except OSError as exc:
        buf += f"<recv failed: {exc!r}>".encode()
    elapsed = elapsed or time.monotonic() - t0
    sock.close()
    sender.join(BOUND)
    return Reply(buf, elapsed)


def req(method: str, target: str, body: bytes = b"", headers: str = "", version: str = "HTTP/1.1") -> bytes:
    head = f"{method} {target} {version}\r\nHost: 127.0.0.1\r\n{headers}"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def post_json(obj_or_bytes: object) -> bytes:
    body = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    return req("POST", "/api/sessions", body, "Content-Type: application/json\r\n")


def assert_refused(r: Reply, *codes: int, head: bool = False) -> None:
    assert r.status in (codes or range(400, 500)), r
    assert r.elapsed < BOUND, r
    if head:  # an answer to HEAD has no body
        assert int(r.headers["content-length"]) > 10 and not r.body, r
        return
    msg = r.body.decode("utf-8")
    if r.headers.get("content-type", "").startswith("application/json"):
        msg = json.loads(msg)["error"]
    assert len(msg.strip()) > 10, r  # says what was wrong


# ---- an episode of the oracle, played through the store's HTML like a browser -----------------------------------
def play(shop: ShopServer, sid: str, task: dict) -> tuple[list[tuple], dict]:
    """The oracle's episode over one keep-alive connection: it reads each page from its URL, finds the link, form or
    button the store rendered for its action and follows it. Returns the pages visited and the final session."""
    host, port = shop.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(method: str, url: str, body: dict | None = None) -> tuple[int, str]:
        data = None if body is None else json.dumps(body)
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        return r.status, r.read().decode()

    st, _ = call("POST", "/api/sessions", {"task_id": task["task_id"], "session_id": sid})
    assert st == 201
    expert = WebShopExpert(shop.store, task, shop.lexicon)
    url = f"/{sid}/"
    st, page_html = call("GET", url)
    trail = []
    for _ in range(40):
        assert st == 200, (url, page_html[:300])
        _, page = shop.page_from_url(shop.url + url)
        trail.append(page.state())
        if page.kind == "done":
            break
        verb, arg = parse_action(expert.act(page))
        method = "GET"
        if verb == "search":
            action = re.search(r'<form method="get" action="([^"]+)"', page_html).group(1)
            url = html.unescape(action) + "?" + urlencode({"q": arg})
        elif arg == BUY:
            url = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page_html).group(1))
            method = "POST"
        else:
            links = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', page_html)
            url = next(html.unescape(h) for h, text in links if html.unescape(text).lower() == arg)
        st, page_html = call(method, url)
    st, state = call("GET", f"/api/sessions/{sid}")
    conn.close()
    state = json.loads(state)
    assert state.pop("session_id") == sid
    return trail, state


# ---- the corpus ---------------------------------------------------------------------------------------------------
def non_ascii_digits() -> list[str]:
    """One digit of every Unicode script that has decimal digits, plus characters `str.isdigit` accepts that are
    not decimal (superscripts, circled digits)."""
    out, blocks = [], set()
    for cp in range(0x80, sys.maxunicode + 1):
        c = chr(cp)
        if unicodedata.category(c) == "Nd" and unicodedata.digit(c) == 3 and cp >> 4 not in blocks:
            blocks.add(cp >> 4)
            out.append(c)
    return out + ["²", "¹", "①", "⁵", "𝟙"]


def corpus(shop: ShopServer, victims: list[str]) -> list[tuple[bytes, tuple[int, ...], dict]]:
    """(request bytes, acceptable statuses (empty: any 4xx), exchange options) for every kind of malformed input."""
    task = shop.tasks[1]
    asin = task["asin"]
    prod = shop.catalog[asin]
    name, values = next(iter(prod.options.items()))
    good_opt = urlencode({"opt": f"{name}:{values[0]}"})
    out: list[tuple[bytes, tuple[int, ...], dict]] = []

    def add(data: bytes, *codes: int, **opts) -> None:
        out.append((data, codes, opts))

    # JSON bodies: wrong types for every field, invalid strings, bodies that are not a JSON object
    wrong_types = [1, 0, -1, 1.5, True, False, [], ["a"], {}, {"a": 1}, 10**30]
    for field in ("task_id", "session_id", "split"):
        for v in wrong_types:
            add(post_json({field: v}), 400)
    bad_ids = [
        "",
        "a/../b",
        "a b",
        "é",
        "x" * 65,
        "api",
        "fixed_1",
        "a\u0000b",
        "a%2Fb",
        "..",
        "ep:1",
        "\ud800",
    ]
    for sid in bad_ids:
        add(post_json({"session_id": sid}), 400)
    for tid in ["nope", "x" * 201, "", " ws-test-0", "\ud800"]:
        add(post_json({"task_id": tid}), 400)
    for split in ["train", "", "TEST", "test "]:
        add(post_json({"split": split}), 400)
    for body in [
        b"[]", b'"s"', b"1", b"null", b"true", b"{", b'{"task_id": }', b"{}x", b"{'a': 1}", b'{"a": 1}',
        b'{"task_id": "ws-test-0", "task_id": "ws-test-1"}', b'{"task_id": NaN}', b'{"session_id": Infinity}',
        b"1" * 5000, b"[" * 30000, b"\xff\xfe{}", b"\xc3\x28", '{"task_id": "ws"}'.encode("utf-16"),
        b"\xef\xbb\xbf{}", b'{"session_id": "\xed\xa0\x80"}',
    ]:  # fmt: skip
        add(post_json(body), 400)
    add(post_json(b"[" * 100000), 413)
    add(post_json({"session_id": "a" * 500000}), 413)
    # body framing
    for cl in ["abc", "-1", "+5", "1e3", "0x10", "", "5, 6", "٣", "99999999999999999999", " 1 2"]:
        add(f"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\n{{}}".encode(), 400, 413)
    add(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400)
    add(
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        400,
    )
    for te in ["gzip", "chunked, gzip", "gzip, chunked", "identity", "chunked, chunked"]:
        add(
            f"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n".encode(),
            400,
        )
    chunked = b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for tail in [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}0\r\n\r\n", b"2\r\n{}\r\n", b"-2\r\n{}\r\n0\r\n\r\n",
                 b"ffffffff\r\n", b"2" + b" " * 2000 + b"\r\n", b"2\r\n{}\r\n0\r\n", b"1_0\r\n"]:  # fmt: skip
        add(chunked + tail, 400, 413)
    add(chunked.replace(b"HTTP/1.1", b"HTTP/1.0") + b"2\r\n{}\r\n0\r\n\r\n", 400)
    # requests aimed at the episodes' sessions (404 while a session does not exist yet)
    add(req("GET", f"/{victims[0]}/", b"x=1"), 400, 404)  # pages take no body
    add(req("POST", f"/{victims[0]}/buy/{asin}", b"opt=color"), 400, 404)
    add(req("DELETE", f"/api/sessions/{victims[1]}", b"{}"), 400)  # must not delete
    add(req("DELETE", f"/api/sessions/{victims[1]}?now=1"), 400)
    add(req("GET", f"/api/sessions/{victims[1]}?x"), 400)
    # request line
    for line in [
        b"get / HTTP/1.1", b"FOO / HTTP/1.1", b"G\xc3\xa9T / HTTP/1.1", b"GET /", b"GET / HTTP/2.0",
        b"GET / HTTP/1.2", b"GET / HTTP/1.1 x", b"GET  / HTTP/1.1", b"GET\t/\tHTTP/1.1", b"GET / http/1.1",
        b"GET /\xc3\xa9/ HTTP/1.1", b"GET /a\x00b/ HTTP/1.1", b"GET * HTTP/1.1", b"GET fixed_1/ HTTP/1.1",
        b"GET http://x/fixed_1/#top HTTP/1.1", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /" + b"a" * (MAX_REQUEST_LINE + 10) + b" HTTP/1.1",
    ]:  # fmt: skip
        add(line + b"\r\nHost: x\r\n\r\n", 400, 404, 414, 501)
    for m in ["PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT"]:
        add(req(m, "/"), 405)
    add(req("GET", "/api/sessions"), 405)
    add(req("POST", f"/api/sessions/{victims[0]}"), 405)
    add(req("POST", f"/{victims[0]}/search?q=x"), 405, 404)
    add(req("DELETE", f"/{victims[0]}/"), 405, 404)
    add(req("HEAD", f"/{victims[0]}/buy/{asin}"), 405, 404)
    # headers
    add(b"GET / HTTP/1.1\r\n\r\n", 400)  # no Host
    add(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
    add(b"GET / HTTP/1.1\r\nHost: x\r\ngarbage\r\n\r\n", 400)
    add(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 400)
    add(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400)
    add(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400)
    add(b"GET / HTTP/1.1\r\nHost: x\r\n(a): b\r\n\r\n", 400)
    add(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n", 431)
    add(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431)
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(90))
    add(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)
    add(
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
        413,
    )
    # URLs: percent-encoding, UTF-8, control characters, unknown pages and sessions
    for path in ["/%zz/", "/fixed_1/search?q=%", "/fixed_1/search?q=%4", "/fixed_1/search?q=a%g1", "/%ff/",
                 "/fixed_1/search?q=%ff%fe", "/fixed_1/item/%c3%28", "/fixed_1/search?q=a%00b", "/a%0ab/",
                 f"/fixed_1/item/{asin}/%ff", f"/fixed_1/item/{asin}?opt=%ff", "/fixed_1/search?%ff=1"]:  # fmt: skip
        add(req("GET", path), 400)
    for path in ["/nosuch/", "/a.b/", "/" + "s" * 65 + "/", "/fixed_01/", "/fixed_-1/", "/fixed_+1/",
                 "/fixed_1_0/", "/fixed_ 1/".replace(" ", "%20"), f"/fixed_{len(shop.tasks)}/",
                 "/fixed_99999999999999999999/", "/fixed_1/nosuch", f"/fixed_1/item/{asin}/price",
                 f"/fixed_1/item/{asin}/reviews/x", "/api/nosuch", "/api/sessions/a/b", "/api/sessions/nosuch",
                 "/api/sessions/fixed_7", "/fixed_1/buy"]:  # fmt: skip
        add(req("GET", path), 404)
    item = f"/fixed_1/item/{asin}"
    for path in [f"/fixed_1/search?q=a&page={'9' * 7}", "/fixed_1/search?q=a&page=0", "/fixed_1/search?q=a&page=",
                 "/fixed_1/search?q=a&page=-1", "/fixed_1/search?q=a&page=%2B1", "/fixed_1/search?q=a&page=1_0",
                 "/fixed_1/search?q=a&page=%201", "/fixed_1/search?q=a&page=1e3", "/fixed_1/search?q=a&page=0x1",
                 "/fixed_1/search?q=a&page=1&page=2", "/fixed_1/search?q=a&q=b", "/fixed_1/search?x=1",
                 "/fixed_1/search?q=" + "a" * 501, f"{item}?opt=nocolon", f"{item}?opt={quote(name)}:nosuch",
                 f"{item}?opt=:", f"{item}?{good_opt}&opt=:", "/fixed_1/item/B0NOTHERE", "/fixed_1/buy/B0NOTHERE",
                 "/?q=1", "/fixed_1/search?" + "&".join(f"opt={i}" for i in range(70))]:  # fmt: skip
        add(req("GET", path), 400)
    # Unicode digits in every numeric field: fixed_<n> ids and `page` on every page kind
    for d in non_ascii_digits():
        e = quote(d)
        add(req("GET", f"/fixed_{e}/"), 404)
        add(req("GET", f"/fixed_1{e}/"), 404)
        add(req("GET", f"/api/sessions/fixed_{e}"), 404)
        for page in ("search?q=a&", f"item/{asin}?", f"item/{asin}/reviews?", f"buy/{asin}?"):
            add(req("GET", f"/{victims[2]}/{page}page={e}"), 400, 404)
            add(req("GET", f"/fixed_2/{page}page=1{e}"), 400)
    # slow and truncated requests
    add(post_json(b'{"task_id": "ws-test-0"}')[:-5], 400)  # body cut short, then half-closed
    add(post_json(b'{"task_id": "ws-test-0"}')[:-5], 408, shut=False)  # body cut short, connection held open
    add(b"GET /fixed_1/ HTTP/1.1\r\nHost: x\r\n", 400)  # headers cut short
    add(b"GET /fixed_1/ HTTP/1.1\r\nHost: x\r\n", 408, shut=False)
    add(b"GET /fixed_1/ HTT", 400)
    add(b"", 408, shut=False, pieces=[b"G", b"E", b"T", b" ", b"/", b" ", b"H", b"T", b"T", b"P"] * 3)
    return out


def _check_corpus(shop: ShopServer, items, victims: list[str]) -> list[Reply]:
    def one(item):
        data, codes, opts = item
        return exchange(shop, data, **opts), item

    with ThreadPoolExecutor(max_workers=12) as pool:
        done = list(pool.map(one, items))
    for r, (data, codes, _) in done:
        assert r.status not in (500, 502, 503, 504), (data[:200], r)
        assert_refused(r, *codes, head=data.startswith(b"HEAD "))
        assert r.headers.get("connection") == "close", r
        if r.status in (405, 501):
            assert r.headers.get("allow"), r
    return [r for r, _ in done]


# ---- tests --------------------------------------------------------------------------------------------------------
def test_malformed_requests_alongside_real_episodes(shop):
    """The whole corpus, 12 connections at a time, while the oracle plays 6 episodes over keep-alive connections:
    every request refused with a 4xx within the bound, the episodes exactly as when played alone, nothing created."""
    tasks = [shop.tasks[i] for i in EPISODE_TASKS]
    alone = [play(shop, f"solo-{i}", t) for i, t in enumerate(tasks)]
    assert sum(s["success"] for _, s in alone) >= 5  # the oracle really shops
    victims = [f"busy-{i}" for i in range(len(tasks))]
    items = corpus(shop, victims)
    assert len(items) > 600
    before = set(shop.sessions)

    results: dict[str, object] = {}

    def episodes():
        with ThreadPoolExecutor(max_workers=3) as pool:
            results["busy"] = list(pool.map(lambda a: play(shop, *a), zip(victims, tasks)))

    t0 = time.monotonic()
    runner = threading.Thread(target=episodes)
    runner.start()
    replies = _check_corpus(shop, items, victims)
    runner.join(60)
    assert not runner.is_alive()
    assert time.monotonic() - t0 < 25
    assert results["busy"] == alone  # same pages, reward, reward parts, purchase and page count
    assert set(shop.sessions) - before == set(victims)  # no refused request made a session
    assert {r.status for r in replies} >= {400, 404, 405, 408, 413, 414, 431, 501}
    # still serving, and no connection thread left behind
    assert play(shop, "after", tasks[0]) == alone[0]
    deadline = time.monotonic() + BOUND
    while any(t.name.endswith("(process_request_thread)") for t in threading.enumerate()):
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.05)


def test_reported_inputs_are_refused_before_any_state_changes(shop):
    before = dict(shop.sessions)
    for body in [{"session_id": 123}, {"session_id": True}, {"session_id": ["a"]}, {"session_id": "a/../b"}]:
        r = exchange(shop, post_json(body))
        assert r.status == 400 and "session_id" in json.loads(r.body)["error"], r
    r = exchange(shop, post_json({"session_id": "x" * 500_000}))
    assert r.status == 413 and str(MAX_BODY) in json.loads(r.body)["error"], r
    r = exchange(shop, post_json(b"\xff{}"))
    assert r.status == 400 and "UTF-8" in json.loads(r.body)["error"]
    r = exchange(shop, post_json(b"[" * 60_000))
    assert r.status == 400 and "nested" in json.loads(r.body)["error"]
    for cl in (b"abc", b"-1"):
        r = exchange(shop, b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl + b"\r\n\r\n{}")
        assert r.status == 400 and "Content-Length" in json.loads(r.body)["error"] and r.elapsed < BOUND
    r = exchange(shop, req("GET", "/fixed_%C2%B2/"))
    assert r.status == 404 and "fixed_²" in html.unescape(r.body.decode())
    assert shop.sessions == before
    # and a good request on a fresh connection still works
    r = exchange(shop, post_json({"task_id": shop.tasks[4]["task_id"], "session_id": "ok-" + "z" * 61}))
    assert r.status == 201 and json.loads(r.body)["session_id"] == "ok-" + "z" * 61


def test_slow_requests_hit_the_deadline_not_the_byte_rate(shop):
    # one byte every 0.2 s: each read is quick, but the whole request may take only TIMEOUT seconds
    slow = [bytes([b]) for b in req("GET", "/fixed_1/")]
    r = exchange(shop, b"", shut=False, pieces=slow)
    assert r.status == 408 and TIMEOUT <= r.elapsed < TIMEOUT + 1.0, r
    # slow connections hold no thread the store needs: a normal request is answered meanwhile
    host, port = shop.httpd.server_address[:2]
    held = [socket.create_connection((host, port)) for _ in range(20)]
    for s in held:
        s.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    t0 = time.monotonic()
    r = exchange(shop, req("GET", "/"))
    assert r.status == 200 and time.monotonic() - t0 < 0.5 * TIMEOUT
    for s in held:
        s.settimeout(BOUND)
        assert s.recv(65536).startswith(b"HTTP/1.1 408 ")
        s.close()
    # an idle keep-alive connection is closed quietly after the deadline
    s = socket.create_connection((host, port), timeout=BOUND)
    t0 = time.monotonic()
    assert s.recv(100) == b"" and TIMEOUT <= time.monotonic() - t0 < BOUND
    s.close()


def test_framing_that_is_valid_is_served(shop):
    # a chunked JSON body, with a chunk extension and a trailer
    body = json.dumps({"task_id": shop.tasks[6]["task_id"], "session_id": "chunky"}).encode()
    data = (
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    )
    r = exchange(shop, data)
    assert r.status == 201 and json.loads(r.body)["task_id"] == shop.tasks[6]["task_id"]
    # two pipelined requests on one keep-alive connection, then a bad one: two answers, then a refusal and close
    r = exchange(
        shop, req("GET", "/chunky/") + req("HEAD", "/api/sessions/chunky") + req("GET", "/chunky/?x=1")
    )
    assert [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", r.raw)] == [200, 200, 400], r
    # Expect: 100-continue is refused before the body is sent when it would be too large, accepted otherwise
    r = exchange(
        shop,
        f"POST /api/sessions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(),
    )
    assert r.status == 413 and b"100 Continue" not in r.raw
    ok = post_json({"session_id": "expecting"}).replace(b"Host:", b"Expect: 100-continue\r\nHost:")
    r = exchange(shop, ok)
    assert r.raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 "), r
    # HTTP/1.0 without Host, and an absolute-form target
    assert exchange(shop, b"GET /chunky/ HTTP/1.0\r\n\r\n").status == 200
    assert exchange(shop, req("GET", f"{shop.url}/chunky/search?q=pillow")).status == 200
    for sid in ("chunky", "expecting"):
        assert exchange(shop, req("DELETE", f"/api/sessions/{sid}")).status == 200


def test_connection_cap_answers_503_and_recovers(shop):
    host, port = shop.httpd.server_address[:2]
    held = [socket.create_connection((host, port)) for _ in range(shop.max_connections)]
    time.sleep(0.2)  # all accepted
    r = exchange(shop, req("GET", "/"))
    assert r.status == 503 and r.headers.get("retry-after") == "1", r
    for s in held:
        s.close()
    deadline = time.monotonic() + BOUND
    while (r := exchange(shop, req("GET", "/"))).status != 200:
        assert time.monotonic() < deadline, r
        time.sleep(0.1)


def test_python_api_validates_ids_and_urls(shop):
    for bad in ["", "a/b", "x" * 65, "api", 5, "é"]:
        with pytest.raises(ConfigError, match="session_id"):
            shop.create_session(None, bad)
    with pytest.raises(ConfigError, match="task_id"):
        shop.create_session(7)
    assert shop.fixed_task("fixed_3") is shop.tasks[3]
    for sid in ["fixed_٣", "fixed_²", "fixed_03", "fixed_", "fixed_-1", f"fixed_{len(shop.tasks)}"]:
        assert shop.fixed_task(sid) is None and shop.get_session(sid) is None
    asin = shop.tasks[1]["asin"]
    assert shop.page_from_url(f"{shop.url}/s1/item/{asin}?q=a&page=2")[1].kind == "item"
    for url in [f"{shop.url}/s1/item/{asin}?page=٢", f"{shop.url}/s1/item/%ff", f"{shop.url}/s1/search?q=%zz",
                f"{shop.url}/s1/search?q=a#x", f"{shop.url}/s1/search?bad=1"]:  # fmt: skip
        assert shop.page_from_url(url)[1] is None
    with pytest.raises(ConfigError, match="timeout"):
        ShopServer(timeout=0)
