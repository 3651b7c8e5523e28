"""Request bodies: encodings, JSON, limits, write keys."""

from __future__ import annotations

import base64
import gzip
import zlib

import orjson
import pytest

from nerve.collector import Collector, RequestError, decompress, write_key_from_header
from nerve.errors import AuthError
from nerve.workspace import Workspace

MESSAGE = {"type": "track", "event": "order_completed", "userId": "u", "messageId": "m",
           "properties": {"order_id": "o", "revenue": 1}}


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_write_key_from_basic_header() -> None:
    assert write_key_from_header(basic("WRITEKEY123")) == "WRITEKEY123"
    assert write_key_from_header("basic " + base64.b64encode(b"k:secret").decode()) == "k"
    assert write_key_from_header("Bearer abc") is None
    assert write_key_from_header("Basic !!!") is None
    assert write_key_from_header(None) is None


def test_write_key_from_header_or_body_and_401_otherwise(collector: Collector) -> None:
    body = orjson.dumps({"batch": [MESSAGE]})
    assert collector.collect(body, endpoint="batch",
                             authorization=basic("WRITEKEY123")).source.name == "server"
    in_body = orjson.dumps({"batch": [MESSAGE], "writeKey": "BROWSERKEY"})
    assert collector.collect(in_body, endpoint="b").source.name == "browser"
    with pytest.raises(AuthError, match="missing write key") as info:
        collector.collect(body, endpoint="batch")
    assert info.value.status == 401
    with pytest.raises(AuthError, match="unknown write key"):
        collector.collect(body, endpoint="batch", authorization=basic("NOPE-NOPE"))
    # a header that holds no key says why, naming only its scheme (not the credential)
    with pytest.raises(AuthError, match="'Bearer', not Basic") as info:
        collector.collect(body, endpoint="batch", authorization="Bearer s3cr3t-token")
    assert "s3cr3t" not in str(info.value)
    assert info.value.status == 401
    with pytest.raises(AuthError, match="not base64"):
        collector.collect(body, endpoint="batch", authorization="Basic %%%%")
    # a wrong header key is refused even when the body carries a good one
    with pytest.raises(AuthError):
        collector.collect(in_body, endpoint="b", authorization=basic("NOPE-NOPE"))


def test_a_basic_header_that_is_empty_or_not_ascii_is_a_401_naming_it(
        collector: Collector) -> None:
    """Header bytes beyond ASCII (read as Latin-1) made base64 raise ValueError, a 500
    `internal`; an empty `Basic ` was said to be "'Basic', not Basic"."""
    body = orjson.dumps({"batch": [MESSAGE]})
    assert write_key_from_header("Basic \xff\xfe") is None
    with pytest.raises(AuthError, match="not base64") as info:
        collector.collect(body, endpoint="batch", authorization="Basic \xff\xfe")
    assert info.value.status == 401
    with pytest.raises(AuthError, match="its Basic credentials are empty") as info:
        collector.collect(body, endpoint="batch", authorization="Basic ")
    assert info.value.status == 401


def test_a_write_key_with_white_space_around_it_is_refused_saying_so(
        collector: Collector) -> None:
    """A key read from a secret file keeps its newline: 'unknown write key' said nothing
    more, while the key was right but for it."""
    body = orjson.dumps({"batch": [MESSAGE]})
    for spaced in ("WRITEKEY123\n", " WRITEKEY123"):
        with pytest.raises(AuthError, match="unknown write key") as info:
            collector.collect(body, endpoint="batch", authorization=basic(spaced))
        assert "the key of source 'server' with white space around it" in str(info.value)
    browser = orjson.dumps({"batch": [MESSAGE], "writeKey": "BROWSERKEY\r\n"})
    with pytest.raises(AuthError, match="the key of source 'browser' with white space"):
        collector.collect(browser, endpoint="b")
    # a wrong key with white space says nothing of any source
    with pytest.raises(AuthError) as info:
        collector.collect(body, endpoint="batch", authorization=basic("NOPE-NOPE\n"))
    assert "white space" not in str(info.value)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies(collector: Collector, encoding: str) -> None:
    raw = orjson.dumps({"batch": [MESSAGE] * 3})
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    result = collector.collect(body, endpoint="batch", authorization=basic("WRITEKEY123"),
                               content_encoding=encoding)
    assert len(result.envelopes) == 3


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b" " * 50_000_000)
    with pytest.raises(RequestError) as info:
        decompress(bomb, "gzip", 500 * 1024)
    assert info.value.status == 413
    assert info.value.code == "payload_too_large"


def test_every_gzip_member_is_inflated_and_nothing_after_the_stream_is_ignored() -> None:
    """RFC 1952 allows several members: the first alone was kept (a complete JSON object,
    so the rest of the batch was dropped under a 200), and bytes after the stream passed."""
    first, second = b'{"batch": [1,', b" 2]}"
    assert decompress(gzip.compress(first) + gzip.compress(second), "gzip",
                      1000) == first + second
    for body, encoding in [(gzip.compress(first) + b"garbage", "gzip"),
                           (zlib.compress(first) + zlib.compress(second), "deflate")]:
        with pytest.raises(RequestError, match="bytes after its end") as info:
            decompress(body, encoding, 1000)
        assert (info.value.status, info.value.code) == (400, "invalid_encoding")
    # the limit is on the members together
    with pytest.raises(RequestError) as info:
        decompress(gzip.compress(b" " * 600) + gzip.compress(b" " * 600), "gzip", 1000)
    assert info.value.status == 413


def test_a_body_of_thousands_of_gzip_members_is_refused_before_they_are_inflated() -> None:
    """Each member's leftover input is copied whole, so 20,000 empty members in 400 KB
    took ~0.9 s of a worker's CPU, and before the write key was checked when it was not
    in a header (it may be the body's writeKey): anyone could keep a worker busy."""
    member = gzip.compress(b" ")
    many = gzip.compress(b'{"batch": [') + member * 20_000 + gzip.compress(b"]}")
    with pytest.raises(RequestError, match="gzip members") as info:
        decompress(many, "gzip", 500 * 1024)
    from nerve.collector._body import MAX_GZIP_MEMBERS

    assert (info.value.status, info.value.code) == (400, "invalid_encoding")
    assert info.value.details == {"encoding": "gzip", "limit": MAX_GZIP_MEMBERS}
    # up to the limit, every member is still inflated
    body = member * (MAX_GZIP_MEMBERS - 1) + gzip.compress(b"{}")
    assert decompress(body, "gzip", 500 * 1024) == b" " * (MAX_GZIP_MEMBERS - 1) + b"{}"


def test_raw_deflate_is_inflated_too() -> None:
    """HTTP's deflate is the zlib format, but some clients send raw deflate under that
    name: it got 400 "incorrect header check"."""
    raw = orjson.dumps({"batch": [MESSAGE] * 3})

    def raw_deflate(data: bytes) -> bytes:
        deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return deflater.compress(data) + deflater.flush()

    assert decompress(raw_deflate(raw), "deflate", 1000) == raw
    # its cap, truncation and trailing bytes are refused as the zlib format's are
    with pytest.raises(RequestError) as info:
        decompress(raw_deflate(b" " * 50_000_000), "deflate", 500 * 1024)
    assert (info.value.status, info.value.code) == (413, "payload_too_large")
    with pytest.raises(RequestError, match="the deflate body is truncated"):
        decompress(raw_deflate(raw)[:-5], "deflate", 1000)
    with pytest.raises(RequestError, match="the deflate body has 4 bytes after its end"):
        decompress(raw_deflate(raw) + b"junk", "deflate", 1000)
    # neither format: the zlib format's message, as before
    with pytest.raises(RequestError, match=r"not valid deflate: .*incorrect header check"
                       ) as info:
        decompress(b"\xff not deflate at all", "deflate", 1000)
    assert (info.value.status, info.value.code) == (400, "invalid_encoding")


def test_bad_and_unknown_encodings() -> None:
    with pytest.raises(RequestError) as info:
        decompress(b"not gzip", "gzip", 1000)
    assert info.value.status == 400
    assert info.value.code == "invalid_encoding"
    with pytest.raises(RequestError) as info:
        decompress(gzip.compress(b"{}" * 100)[:-10], "gzip", 1000)
    assert info.value.code == "invalid_encoding"
    with pytest.raises(RequestError) as info:
        decompress(b"{}", "br", 1000)
    assert info.value.status == 415


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "invalid_json"),
    (b"\xff\xfe{}", "invalid_json"),
    (b'{"batch": {"type": "track"}}', "invalid_field"),
    (b'{"sentAt": "2026-01-01T00:00:00Z"}', "missing_field"),
])
def test_malformed_bodies_are_400(collector: Collector, body: bytes, code: str) -> None:
    with pytest.raises(RequestError) as info:
        collector.collect(body, endpoint="batch", authorization=basic("WRITEKEY123"))
    assert info.value.status == 400
    assert info.value.code == code


@pytest.mark.parametrize(("body", "named"), [
    ({"messages": [MESSAGE]}, "the body has messages, not batch"),
    ({"events": [MESSAGE], "sentAt": "2026-01-01T00:00:00Z"},
     "the body has events, sentAt, not batch"),
    ({}, "the body is an empty object"),
    ({"k" * 100: 1}, "k" * 40 + "..., not batch"),
])
def test_a_batch_without_batch_names_the_keys_it_has(collector: Collector,
                                                      body: dict[str, object],
                                                      named: str) -> None:
    """``{"messages": [...]}`` to /v1/batch read ``batch: required ... (got null)``, as if
    the client had sent ``"batch": null``."""
    with pytest.raises(RequestError) as info:
        collector.collect(orjson.dumps(body), endpoint="batch",
                          authorization=basic("WRITEKEY123"))
    assert info.value.code == "missing_field"
    assert named in str(info.value)
    assert "null" not in str(info.value)


def test_a_body_that_is_not_utf8_is_named_by_its_first_bad_byte(collector: Collector) -> None:
    """orjson says "surrogates not allowed" for any such byte: a Latin-1 é too."""
    body = '{"batch": [{"type": "track", "event": "café"}]}'.encode("latin-1")
    with pytest.raises(RequestError) as info:
        collector.collect(body, endpoint="batch", authorization=basic("WRITEKEY123"))
    offset = body.index(b"\xe9")
    assert (info.value.status, info.value.code) == (400, "invalid_json")
    assert str(info.value).startswith(
        f"the body is not valid UTF-8: byte 0xe9 at offset {offset} (")
    assert "surrogates" not in str(info.value)
    assert info.value.details == {"position": offset}


@pytest.mark.parametrize("endpoint", ["batch", "track"])
def test_a_body_starting_with_a_utf8_byte_order_mark_is_read(collector: Collector,
                                                              endpoint: str) -> None:
    """.NET's UTF8Encoding (and some Windows clients) write EF BB BF before the JSON: RFC
    8259 lets a parser ignore it, and nerve answered 400 invalid_json, losing the batch."""
    bom = b"\xef\xbb\xbf"
    body = orjson.dumps({"batch": [MESSAGE]} if endpoint == "batch" else MESSAGE)
    collected = collector.collect(bom + body, endpoint=endpoint,
                                  authorization=basic("WRITEKEY123"))
    assert [e["event"] for e in collected.envelopes] == ["order_completed"]
    assert collected.quarantined == 0
    gzipped = collector.collect(gzip.compress(bom + body), endpoint=endpoint,
                                authorization=basic("WRITEKEY123"), content_encoding="gzip")
    assert len(gzipped.rows) == 1
    # only one mark, only at the start; an error's position counts the mark's bytes
    for bad, position in ((bom + bom + body, 3), (b" " + bom + body, 1)):
        with pytest.raises(RequestError) as info:
            collector.collect(bad, endpoint=endpoint, authorization=basic("WRITEKEY123"))
        assert info.value.code == "invalid_json"
        assert info.value.details == {"position": position}


def limited(workspace: Workspace, **limits: int) -> Collector:
    from nerve.catalog import Catalog

    toml = workspace.root / "nerve.toml"
    toml.write_text(toml.read_text() + "\n[collector]\n"
                    + "".join(f"{k} = {v}\n" for k, v in limits.items()))
    ws = Workspace.load(workspace.root)
    return Collector(ws, Catalog.load(ws.events_dir))


def test_limits_come_from_the_workspace(workspace: Workspace) -> None:
    collector = limited(workspace, max_batch_events=3, max_event_bytes=300,
                        max_request_bytes=2000)
    auth = basic("WRITEKEY123")
    assert len(collector.collect(orjson.dumps({"batch": [MESSAGE] * 3}), endpoint="batch",
                                 authorization=auth).envelopes) == 3
    with pytest.raises(RequestError) as info:
        collector.collect(orjson.dumps({"batch": [MESSAGE] * 4}), endpoint="batch",
                          authorization=auth)
    assert info.value.code == "too_many_events"
    assert info.value.status == 400
    # an event over max_event_bytes is quarantined without its largest column, and the
    # request's other events land: a 413 lost them all (SDKs drop a refused batch whole)
    big = {**MESSAGE, "properties": {"order_id": "x" * 400, "revenue": 1}}
    kept, cut = collector.collect(orjson.dumps({"batch": [MESSAGE, big]}), endpoint="batch",
                                  authorization=auth).envelopes
    assert kept["violations"] is None
    assert kept["properties"] is not None
    assert cut["properties"] is None
    assert "x" * 400 not in str(cut)
    assert cut["message_id"] == MESSAGE["messageId"]
    assert cut["event"] == MESSAGE["event"]
    [problem] = [v for v in orjson.loads(cut["violations"] or "[]")
                 if v["rule"] == "event_too_large"]
    assert problem["path"] == "$"
    assert "max_event_bytes (300)" in problem["message"]
    assert "properties (" in problem["message"]
    assert "context (" not in problem["message"]
    big_context = {**MESSAGE, "context": {"page": {"title": "t" * 400}}}
    [cut] = collector.collect(orjson.dumps({"batch": [big_context]}), endpoint="batch",
                              authorization=auth).envelopes
    assert cut["context"] == "{}"
    assert cut["properties"] is not None
    assert "context (" in orjson.loads(cut["violations"] or "[]")[-1]["message"]
    with pytest.raises(RequestError) as info:
        collector.collect(b" " * 2001, endpoint="batch", authorization=auth)
    assert info.value.status == 413
    assert info.value.code == "payload_too_large"
    # the request limit applies after decompression too
    with pytest.raises(RequestError) as info:
        collector.collect(gzip.compress(b" " * 5000), endpoint="batch", authorization=auth,
                          content_encoding="gzip")
    assert info.value.status == 413


@pytest.mark.parametrize(
    "key", [b"k\\u00e9y-non-ascii", b"\\udb16\\ude80", b"WRITEKEY12\\u00b3"])
def test_a_non_ascii_write_key_is_a_401_not_a_crash(collector: Collector, key: bytes) -> None:
    # found by schemathesis: compare_digest raised TypeError (a 500) on non-ASCII text
    body = b'{"batch":[],"writeKey":"' + key + b'"}'
    with pytest.raises(AuthError, match="unknown write key"):
        collector.collect(body, endpoint="b")
