"""The event log on NATS JetStream, against a real nats-server: settings, the writer, the
reader and the loader (exactly once, by stream sequence committed with the rows)."""

from __future__ import annotations

import asyncio
import random
import re
import string
from collections.abc import Awaitable, Callable
from typing import Any

import pyarrow as pa
import pytest

from nerve.errors import BackpressureError, UserError, WorkspaceError
from nerve.loader import Loader, LoadStats, StreamLoader
from nerve.log import StreamLink, StreamReader, StreamSettings, StreamWriter
from nerve.log._stream import encode_message
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace


def rows(n: int, prefix: str = "m", *, pad: int = 0) -> pa.RecordBatch:
    """``n`` envelope rows as the collector makes them (``pad``: that many random
    characters in each context, which LZ4 cannot shrink)."""
    from nerve.collector import rows_to_record_batch

    rng = random.Random(n)
    filler = ("".join(rng.choices(string.ascii_letters, k=pad)) for _ in range(n))
    return rows_to_record_batch([
        (f"{prefix}-{i}", "track", "order_completed", None, f"u{i % 7}", None, None, None,
         1_700_000_000_000_000 + i, None, None, 1_700_000_000_000_000 + i,
         '{"revenue": 1.5}', None, f'{{"pad": "{p}"}}', "server", False, "1", None)
        for i, p in enumerate(filler)])


def nats_workspace(make_workspace: Callable[..., Workspace], url: str,
                   extra: str = "") -> Workspace:
    return make_workspace(extra_toml=f'[log]\nurl = "{url}"\nstream = "EV"\n'
                                     f'subject = "test.events"\n{extra}')


def stream_workspace(make_workspace: Callable[..., Workspace],
                     url: str) -> tuple[Workspace, StreamSettings]:
    """A workspace whose log is the stream ``EV`` on ``url``, and its stream settings."""
    ws = nats_workspace(make_workspace, url)
    settings = StreamSettings.from_workspace(ws)
    assert settings is not None
    return ws, settings


def on_jetstream(url: str, action: Callable[[Any], Awaitable[Any]]) -> None:
    """``action(js)`` on a connection of its own: what an operator or another tool does."""
    import nats

    async def run() -> None:
        nc = await nats.connect(url)
        try:
            await action(nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(run())


# ----------------------------------------------------------------------------- settings


def test_the_log_is_local_unless_nerve_toml_names_a_nats_server(
        make_workspace: Callable[..., Workspace]) -> None:
    assert StreamSettings.from_workspace(make_workspace()) is None
    assert StreamSettings.from_workspace(make_workspace(extra_toml='[log]\nurl = "local"')) is None
    ws = make_workspace(extra_toml='[log]\nurl = "nats://a:4222, nats://b:4222"\n'
                                   "replicas = 3")
    settings = StreamSettings.from_workspace(ws)
    assert settings is not None
    assert settings.servers == ["nats://a:4222", "nats://b:4222"]
    assert (settings.stream, settings.subject, settings.replicas) == (
        "NERVE_EVENTS", "nerve.events", 3)
    assert settings.max_bytes > 1 << 30  # the backlog bound, plus room for requests in flight


@pytest.mark.parametrize(("toml", "named"), [
    ('url = "http://x:4222"', "url"),
    ('url = "nats://x"\nstream = "a.b"', "stream"),
    ('url = "nats://x"\nsubject = "a.>"', "subject"),
    ('url = "nats://x"\nreplicas = 0', "replicas"),
    ('url = "nats://x"\nstreem = "A"', "streem"),
])
def test_a_wrong_log_setting_names_the_file_and_the_setting(
        make_workspace: Callable[..., Workspace], toml: str, named: str) -> None:
    # an unknown key is refused as the workspace loads, naming its line; a bad value when
    # the log is opened
    with pytest.raises(WorkspaceError, match=rf"nerve\.toml(:\d+)?: \[log\].*{named}"):
        StreamSettings.from_workspace(make_workspace(extra_toml=f"[log]\n{toml}"))


def test_a_wrong_url_names_where_it_was_set_and_never_its_password(
        make_workspace: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(extra_toml='[log]\nurl = "nats//bob:hunter2@db:4222"')
    [line] = [n for n, text in enumerate((ws.root / "nerve.toml").read_text().splitlines(), 1)
              if text.startswith('url = "nats//')]
    with pytest.raises(WorkspaceError) as in_toml:
        StreamSettings.from_workspace(ws)
    assert f"nerve.toml:{line}: [log] url" in str(in_toml.value)
    # set in the environment: the message names the variable, not nerve.toml's line
    monkeypatch.setenv("NERVE_LOG_URL", "nats//bob:hunter2@db:4222")
    with pytest.raises(WorkspaceError) as in_env:
        StreamSettings.from_workspace(make_workspace())
    assert str(in_env.value).startswith("NERVE_LOG_URL")
    assert "nerve.toml" not in str(in_env.value)
    for raised in (in_toml, in_env):
        assert "hunter2" not in str(raised.value)
        assert "not a NATS address" in str(raised.value)


def test_the_environment_may_hold_the_url_with_its_credentials(
        make_workspace: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERVE_LOG_URL", "nats://user:secret@db:4222")
    settings = StreamSettings.from_workspace(make_workspace())
    assert settings is not None
    assert settings.url == "nats://user:secret@db:4222"


def test_an_unreachable_server_is_a_clear_error_without_the_password(
        make_workspace: Callable[..., Workspace]) -> None:
    from tests.conftest import free_port

    from nerve.errors import TransientError

    port = free_port()
    ws = make_workspace(extra_toml=f'[log]\nurl = "nats://me:hunter2@127.0.0.1:{port}"')
    settings = StreamSettings.from_workspace(ws)
    assert settings is not None
    # an outage, not a mistake in the input: retryable (the CLI exits 5, not 4)
    with pytest.raises(TransientError,
                       match=rf"cannot reach NATS at nats://127\.0\.0\.1:{port}:") as caught:
        StreamLink(settings)
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith(f"{ws.root / 'nerve.toml'}:")  # and its line


def test_a_server_without_jetstream_is_a_clear_error_naming_the_fix(
        make_workspace: Callable[..., Workspace], tmp_path: Any, nats_server: Any) -> None:
    from tests.conftest import Nats

    plain = Nats(tmp_path / "plain-store", jetstream=False).start()
    try:
        _, settings = stream_workspace(make_workspace, plain.url)
        with pytest.raises(UserError, match=r"JetStream") as caught:
            StreamLink(settings)
        assert "-js" in str(caught.value)
        assert plain.url.removeprefix("nats://") in str(caught.value)
    finally:
        plain.stop()


def test_a_token_in_the_environments_url_reaches_a_server_that_asks_for_one(
        make_workspace: Callable[..., Workspace], tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch, nats_server: Any) -> None:
    from tests.conftest import Nats

    guarded = Nats(tmp_path / "guarded-store", token="s3cret-token").start()
    try:
        ws = make_workspace(extra_toml=f'[log]\nurl = "nats://127.0.0.1:{guarded.port}"')
        settings = StreamSettings.from_workspace(ws)
        assert settings is not None
        with pytest.raises(UserError, match=r"refused the credentials \(authorization "
                                            r"violation\): it asks for credentials and the "
                                            "URL has none"):  # no token: refused
            StreamLink(settings)
        monkeypatch.setenv("NERVE_LOG_URL", f"nats://s3cret-token@127.0.0.1:{guarded.port}")
        settings = StreamSettings.from_workspace(ws)
        assert settings is not None
        publish(settings, rows(3, "t"))
    finally:
        guarded.stop()


@pytest.mark.parametrize(("guard", "url"), [
    ({"token": "s3cret-token"}, "nats://wrong-token@127.0.0.1:{port}"),
    ({"user": ("nerve", "s3cret-pass")}, "nats://nerve:wrong-pass@127.0.0.1:{port}"),
    ({"user": ("nerve", "s3cret-pass")}, "nats://127.0.0.1:{port}"),
])
def test_wrong_credentials_are_named_as_such_not_as_an_unreachable_server(
        make_workspace: Callable[..., Workspace], tmp_path: Any, nats_server: Any,
        guard: dict[str, Any], url: str) -> None:
    """The server answered, and refused: a mistake in the URL to fix (exit 4), not an
    outage to wait out, and the message says which."""
    from tests.conftest import Nats

    guarded = Nats(tmp_path / "guarded-store", **guard).start()
    try:
        ws = make_workspace(extra_toml=f'[log]\nurl = "{url.format(port=guarded.port)}"')
        settings = StreamSettings.from_workspace(ws)
        assert settings is not None
        with pytest.raises(UserError) as caught:
            StreamLink(settings)
    finally:
        guarded.stop()
    message = str(caught.value)
    assert (f"the NATS server at nats://127.0.0.1:{guarded.port} refused the credentials "
            "(authorization violation)") in message
    assert "cannot reach" not in message
    assert "wrong-" not in message  # no credential is shown


@pytest.fixture
def tls_nats(tmp_path: Any, nats_server: Any) -> Any:
    """A nats-server that requires TLS and a client certificate, signed by a CA of the
    test's own (the folder of PEM files is ``.tls``)."""
    from tests.conftest import Nats, make_certificates

    server = Nats(tmp_path / "tls-store", tls=make_certificates(tmp_path / "certs")).start()
    yield server
    server.stop()


def tls_settings(make_workspace: Callable[..., Workspace], server: Any,
                 **files: str) -> StreamSettings:
    tls = "".join(f'{key} = "{server.tls / name}"\n' for key, name in files.items())
    settings = StreamSettings.from_workspace(nats_workspace(make_workspace, server.url, tls))
    assert settings is not None
    return settings


def test_a_server_that_requires_tls_and_client_certificates_is_reached_with_the_tls_files(
        make_workspace: Callable[..., Workspace], tls_nats: Any) -> None:
    import shutil

    ws = make_workspace()  # the files relative to the workspace, as nerve.toml has them
    shutil.copytree(tls_nats.tls, ws.root / "certs")
    with (ws.root / "nerve.toml").open("a") as toml:
        toml.write(f'\n[log]\nurl = "{tls_nats.url}"\nstream = "EV"\nsubject = "test.events"\n'
                   'tls_ca = "certs/ca.pem"\ntls_cert = "certs/client.pem"\n'
                   'tls_key = "certs/client.key"\n')
    ws = Workspace.load(ws.root)
    settings = StreamSettings.from_workspace(ws)
    assert settings is not None
    publish(settings, rows(4, "tls"))
    with Warehouse.for_workspace(ws) as wh:
        assert load_with_a_new_loader(ws, wh).loaded == 4
        assert loaded_ids(wh) == [f"tls-{i}" for i in range(4)]


@pytest.mark.parametrize(("files", "says"), [
    # the server's certificate is signed by a CA the system does not know: say which setting
    ({"tls_cert": "client.pem", "tls_key": "client.key"}, r"CERTIFICATE_VERIFY_FAILED.*tls_ca"),
    ({"tls_ca": "other-ca.pem", "tls_cert": "client.pem", "tls_key": "client.key"},
     "CERTIFICATE_VERIFY_FAILED"),
    ({}, "CERTIFICATE_VERIFY_FAILED"),
    # the server verifies clients: without a certificate the handshake is refused
    ({"tls_ca": "ca.pem"}, "cannot reach NATS"),
])
def test_a_tls_server_is_not_reached_with_the_wrong_or_missing_tls_files(
        make_workspace: Callable[..., Workspace], tls_nats: Any, files: dict[str, str],
        says: str) -> None:
    settings = tls_settings(make_workspace, tls_nats, **files)
    with pytest.raises(UserError, match=says):
        StreamLink(settings)


def test_tls_settings_name_the_setting_and_file_that_is_wrong(
        make_workspace: Callable[..., Workspace], tmp_path: Any) -> None:
    url = 'url = "nats://127.0.0.1:4222"\n'
    missing = nats_workspace(make_workspace, "nats://127.0.0.1:4222", 'tls_ca = "nope.pem"')
    with pytest.raises(WorkspaceError, match=r"\[log\] tls_ca: .*nope\.pem does not exist"):
        StreamSettings.from_workspace(missing)
    (tmp_path / "c.pem").write_text("not a certificate")
    alone = make_workspace(extra_toml=f'[log]\n{url}tls_cert = "{tmp_path / "c.pem"}"')
    with pytest.raises(WorkspaceError, match="tls_cert and tls_key go together"):
        StreamSettings.from_workspace(alone)
    garbage = make_workspace(extra_toml=f'[log]\n{url}tls_ca = "{tmp_path / "c.pem"}"')
    settings = StreamSettings.from_workspace(garbage)
    assert settings is not None
    with pytest.raises(UserError, match=r"\[log\] tls_ca: .*c\.pem is not a PEM certificate"):
        settings.tls_context()


# ----------------------------------------------------------------------------- the writer


def test_what_sync_returns_from_is_in_the_stream_in_order(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    _, settings = stream_workspace(make_workspace, nats_server.url)
    writer = StreamWriter(settings, "w1")
    try:
        writer.append(rows(10, "a"))
        writer.append(rows(5, "b"))
        writer.sync()
        writer.sync()  # nothing pending: nothing published
        reader = StreamReader(writer.link)
        messages = reader.read(1, writer.link.stream_state().last_seq, 1000)
    finally:
        writer.close()
    assert [m.seq for m in messages] == [1, 2]
    got = [r for m in messages for r in m.table.column("message_id").to_pylist()]
    assert got == [f"a-{i}" for i in range(10)] + [f"b-{i}" for i in range(5)]


def test_a_round_larger_than_the_servers_max_payload_is_split(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    _, settings = stream_workspace(make_workspace, nats_server.url)
    batch = rows(600, "big", pad=8000)  # ~4.8 MB that LZ4 cannot shrink; NATS takes 1 MB
    assert len(encode_message(batch)) > 4 << 20
    writer = StreamWriter(settings, "w1")
    try:
        writer.append(batch)
        writer.sync()
        state = writer.link.stream_state()
        messages = StreamReader(writer.link).read(1, state.last_seq, 10_000)
    finally:
        writer.close()
    assert state.messages >= 5
    assert all(len(m.data) <= writer.link.max_payload for m in messages)
    got = [r for m in messages for r in m.table.column("message_id").to_pylist()]
    assert got == [f"big-{i}" for i in range(600)]


def test_a_full_stream_refuses_with_backpressure_and_keeps_what_it_has(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    from nats.js.api import DiscardPolicy, StreamConfig

    # an operator's stream: kept as it is, being safe
    on_jetstream(nats_server.url, lambda js: js.add_stream(StreamConfig(
        name="EV", subjects=["test.events"], max_bytes=200_000, discard=DiscardPolicy.NEW)))
    _, settings = stream_workspace(make_workspace, nats_server.url)
    writer = StreamWriter(settings, "w1")
    try:
        for n in range(100):
            writer.append(rows(50, f"r{n}", pad=500))
            try:
                writer.sync()
            except BackpressureError as exc:
                refused = exc
                break
        else:
            pytest.fail("a stream of 200 kB took 100 batches of 25 kB")
        assert "is full" in str(refused)
        assert refused.retry_after
        kept = writer.link.stream_state()
    finally:
        writer.close()
    assert 0 < kept.messages < 100
    assert kept.bytes <= 200_000


@pytest.mark.parametrize(("change", "problem"), [
    ({"discard": "old"}, "discards old messages"),
    ({"max_age": 3600.0}, "deletes messages after"),
    ({"subjects": ["other.subject"]}, "does not take the subject"),
])
def test_an_existing_stream_that_could_lose_events_is_refused(
        make_workspace: Callable[..., Workspace], nats_server: Any,
        change: dict[str, Any], problem: str) -> None:
    from nats.js.api import DiscardPolicy, StreamConfig

    config: dict[str, Any] = {"name": "EV", "subjects": ["test.events"],
                              "discard": DiscardPolicy.NEW, **change}
    if change.get("discard") == "old":
        config["discard"] = DiscardPolicy.OLD

    on_jetstream(nats_server.url, lambda js: js.add_stream(StreamConfig(**config)))
    _, settings = stream_workspace(make_workspace, nats_server.url)
    with pytest.raises(UserError, match=rf"\[log\] stream 'EV'.*{problem}"):
        StreamLink(settings)


# ----------------------------------------------------------------------------- the loader


def publish(settings: StreamSettings, *batches: pa.RecordBatch) -> None:
    writer = StreamWriter(settings, "w1")
    try:
        for batch in batches:
            writer.append(batch)
            writer.sync()
    finally:
        writer.close()


def load_with_a_new_loader(ws: Workspace, wh: Warehouse) -> LoadStats:
    """What one pass of a loader made for the occasion loads, the loader then stopped."""
    loader = Loader.for_workspace(ws, wh)
    try:
        return loader.load_once()
    finally:
        loader.stop()


def loaded_ids(wh: Warehouse) -> list[str]:
    return [r["message_id"] for r in wh.query(
        "SELECT message_id FROM events ORDER BY message_id").to_pylist()]


def test_the_loader_loads_by_sequence_exactly_once_and_purges_what_it_loaded(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(30, "a"), rows(20, "b"))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        assert isinstance(loader, StreamLoader)
        try:
            stats = loader.load_once()
            assert (stats.rows_in, stats.loaded) == (50, 50)
            assert loader.load_once().rows_in == 0
            publish(settings, rows(5, "c"), rows(30, "a"))  # a client's resend: duplicates
            stats = loader.load_once()
            assert (stats.rows_in, stats.loaded, stats.duplicates) == (35, 5, 30)
            offsets = wh.query('SELECT writer, segment, "offset" FROM log_offsets').to_pylist()
            ledger = wh.query('SELECT start_offset, "offset", rows_in FROM loads '
                              "ORDER BY \"at\"").to_pylist()
            state = loader._stream().link.stream_state()
        finally:
            loader.stop()
        assert len(loaded_ids(wh)) == 55
    assert offsets == [{"writer": "jetstream", "segment": "EV", "offset": 5}]
    assert [(r["start_offset"], r["offset"], r["rows_in"]) for r in ledger] == [
        (1, 3, 50), (3, 5, 35)]
    assert state.messages == 0  # loaded, so purged
    assert state.first_seq == 5


def test_a_loader_that_died_before_purging_skips_what_it_committed(
        make_workspace: Callable[..., Workspace], nats_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(40, "a"))

    def unreachable(self: StreamReader, seq: int) -> None:
        raise OSError("the NATS server went away")

    with Warehouse.for_workspace(ws) as wh:
        with monkeypatch.context() as patched:
            patched.setattr(StreamReader, "purge_below", unreachable)
            first = Loader.for_workspace(ws, wh)
            assert first.load_once().loaded == 40
            first._stream().link.close()  # gone before any purge: the stream still has all
        publish(settings, rows(10, "b"))
        second = Loader.for_workspace(ws, wh)
        try:
            stats = second.load_once()
            state = second._stream().link.stream_state()
        finally:
            second.stop()
        assert (stats.rows_in, stats.loaded, stats.duplicates) == (10, 10, 0)
        assert loaded_ids(wh) == sorted([f"a-{i}" for i in range(40)] +
                                        [f"b-{i}" for i in range(10)])
    assert state.messages == 0


def test_a_message_that_is_not_a_nerve_batch_is_kept_aside_and_passed(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(3, "a"))
    # someone else's tool publishing on the subject
    on_jetstream(nats_server.url, lambda js: js.publish("test.events", b'{"hello": "world"}'))
    publish(settings, rows(4, "b"))
    with Warehouse.for_workspace(ws) as wh:
        stats = load_with_a_new_loader(ws, wh)
        assert stats.loaded == 7
        assert len(loaded_ids(wh)) == 7
    kept = ws.data_dir / "rejected" / "EV-2.msg"
    assert kept.read_bytes() == b'{"hello": "world"}'


def test_a_stream_made_again_is_loaded_from_its_start(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, *(rows(2, f"a{n}") for n in range(5)))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        loader.load_once()  # loaded up to sequence 6
        loader.stop()

        on_jetstream(nats_server.url, lambda js: js.delete_stream("EV"))
        publish(settings, rows(3, "new"))  # sequences start at 1 again
        loader = Loader.for_workspace(ws, wh)
        try:
            assert loader.load_once().loaded == 3
        finally:
            loader.stop()
        assert "new-2" in loaded_ids(wh)


def test_a_stream_deleted_while_servers_run_is_made_again_and_says_so(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    from nerve.errors import TransientError

    ws, settings = stream_workspace(make_workspace, nats_server.url)
    writer = StreamWriter(settings, "w1")
    try:
        writer.append(rows(2, "before"))
        writer.sync()
        on_jetstream(nats_server.url, lambda js: js.delete_stream("EV"))
        writer.append(rows(2, "lost"))
        with pytest.raises(TransientError, match=r"'EV' does not exist") as caught:
            writer.sync()  # answered 503: the SDK sends the batch again
        assert caught.value.retry_after
        assert writer.backlog_bytes() == 0  # the server's backlog watch makes it again
        writer.append(rows(3, "after"))
        writer.sync()
    finally:
        writer.close()
    with Warehouse.for_workspace(ws) as wh:
        assert load_with_a_new_loader(ws, wh).loaded == 3
        assert loaded_ids(wh) == ["after-0", "after-1", "after-2"]


def test_a_loader_without_nats_says_so_in_one_line_without_a_traceback(
        make_workspace: Callable[..., Workspace], nats_server: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import time

    from nerve.errors import TransientError

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "nerve.loader"]

    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(2))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        try:
            assert loader.load_once().loaded == 2
            nats_server.kill()
            with caplog.at_level(logging.WARNING, logger="nerve.loader"):
                loader.start(interval=0.05)
                deadline = time.monotonic() + 30
                while not said() and time.monotonic() < deadline:
                    time.sleep(0.05)
            nats_server.start()  # for the final drain of stop(), once reconnected
            while time.monotonic() < deadline:
                try:
                    loader.backlog_bytes()
                    break
                except TransientError:
                    time.sleep(0.05)
        finally:
            loader.stop()
    first = said()[0]
    assert first.levelno == logging.WARNING
    assert first.exc_info is None
    assert "'EV' is unreachable" in first.getMessage()


def test_a_loader_stopped_without_nats_says_the_stream_is_unreachable(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    import time

    from nerve.errors import TransientError

    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(2))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        assert loader.load_once().loaded == 2
        nats_server.kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until it notices the server is gone
            try:
                loader.backlog_bytes()
            except TransientError:
                break
            time.sleep(0.05)
        with pytest.raises(TransientError, match=r"'EV' is unreachable"):
            loader.stop()  # its final drain: was a bare "nats: timeout"


def test_a_stream_made_again_under_a_running_loader_loses_nothing_it_acknowledged(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    """The new stream's sequences reached the committed one before the loader looked:
    sequences 1 to 5 of the new stream were taken as loaded, and lost."""
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, *(rows(1, f"old{n}") for n in range(5)))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        try:
            assert loader.load_once().loaded == 5  # committed up to sequence 6
            on_jetstream(nats_server.url, lambda js: js.delete_stream("EV"))
            publish(settings, *(rows(1, f"new{n}") for n in range(6)))  # sequences 1-6
            assert loader.load_once().loaded == 6
        finally:
            loader.stop()
        assert [i for i in loaded_ids(wh) if i.startswith("new")] == [
            f"new{n}-0" for n in range(6)]


def test_nerve_forget_drains_the_stream_first(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    from nerve.erasure import forget_users

    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(14, "f"))  # users u0..u6, two rows each
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        try:
            erasure = forget_users(ws, loader, user_ids=["u3"])
            state = loader._stream().link.stream_state()
        finally:
            loader.stop()
        left = wh.query("SELECT count(*) AS n FROM events WHERE user_id = 'u3'").to_pylist()
        assert left == [{"n": 0}]
        assert len(loaded_ids(wh)) == 12
    assert erasure.rows == {"events": 2, "quarantine": 0}
    assert state.messages == 0  # no copy of hers is left in the stream either


def test_an_event_limit_larger_than_a_nats_message_is_refused_at_start(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    from nerve.log import open_log

    ws = make_workspace(extra_toml=f'[log]\nurl = "{nats_server.url}"')
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("max_event_bytes = 32768",
                                             "max_event_bytes = 2000000"))
    with pytest.raises(WorkspaceError, match=r"max_event_bytes \(2000000\) does not fit the "
                                             r"NATS server's max_payload \(1048576 bytes\)"):
        open_log(Workspace.load(ws.root), "w1")
    open_log(ws, "w1").close()  # the default limit fits


def test_a_stream_has_one_loader_and_a_restarted_one_takes_its_claim_back(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    first_ws = nats_workspace(make_workspace, nats_server.url)
    other_ws = nats_workspace(make_workspace, nats_server.url)  # another warehouse
    settings = StreamSettings.from_workspace(first_ws)
    assert settings is not None
    publish(settings, rows(5, "a"))
    with Warehouse.for_workspace(first_ws) as wh, Warehouse.for_workspace(other_ws) as other:
        first = Loader.for_workspace(first_ws, wh)
        assert first.load_once().loaded == 5
        second = Loader.for_workspace(other_ws, other)
        assert isinstance(second, StreamLoader)
        with pytest.raises(UserError, match=r"stream 'EV' is loaded by another nerve serve "
                                            rf"\({re.escape(first.owner)}, pid"):
            second.load_once()
        publish(settings, rows(3, "b"))
        first._stream().link.close()  # a crash: the claim stays
        first._reader = None
        again = Loader.for_workspace(first_ws, wh)  # the same server, started again
        assert again.load_once().loaded == 3
        with pytest.raises(UserError, match="loaded by another"):
            second.claim()
        again.stop()  # gives the claim up
        second.claim()
        assert second.load_once().rows_in == 0  # nothing left: the first loaded it all
        second.stop()
        assert len(loaded_ids(wh)) == 8


def test_messages_removed_before_loading_are_reported_and_the_rest_loaded(
        make_workspace: Callable[..., Workspace], nats_server: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(2, "a"))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        loader.load_once()  # loaded up to sequence 2
        publish(settings, rows(2, "b"), rows(2, "c"), rows(2, "d"))  # sequences 2 to 4

        # an operator removes 2 and 3, unloaded
        on_jetstream(nats_server.url, lambda js: js.purge_stream("EV", seq=4))
        try:
            stats = loader.load_once()
        finally:
            loader.stop()
        assert stats.loaded == 2
        assert sorted(loaded_ids(wh)) == ["a-0", "a-1", "d-0", "d-1"]
    assert "messages 2 to 3 of the stream EV were removed before they were loaded" in (
        caplog.text)


def test_rows_the_warehouse_refuses_are_kept_aside_and_the_others_loaded(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    good = rows(3, "ok")
    # a batch without message_id: the warehouse's NOT NULL refuses every row of it
    bad = good.drop_columns(["message_id"])
    publish(settings, rows(2, "first"), bad, good)
    with Warehouse.for_workspace(ws) as wh:
        stats = load_with_a_new_loader(ws, wh)
        assert (stats.loaded, stats.rejected) == (5, 3)
        assert sorted(loaded_ids(wh)) == ["first-0", "first-1", "ok-0", "ok-1", "ok-2"]
        ledger = wh.query('SELECT sum(rejected) AS r FROM loads').to_pylist()
    assert ledger == [{"r": 3}]
    kept = ws.data_dir / "rejected" / "EV-2.rejected.arrow"
    assert pa.ipc.open_file(kept).read_all().num_rows == 3


def consumers(url: str) -> list[str]:
    """The names of the stream ``EV``'s consumers, as the JetStream API lists them."""
    names: list[str] = []

    async def look(js: Any) -> None:
        names.extend(c.name for c in await js.consumers_info("EV"))

    on_jetstream(url, look)
    return names


def test_a_loader_whose_consumer_was_deleted_makes_it_again_and_loads_on(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    """Fetching from a deleted consumer only times out, like an empty stream: the loader
    loaded nothing again, ever, while the stream filled up."""
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(3, "a"))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        try:
            assert loader.load_once().loaded == 3
            [name] = consumers(nats_server.url)

            async def delete(js: Any) -> None:  # an operator, or the server's own clean-up
                await js.delete_consumer("EV", name)

            on_jetstream(nats_server.url, delete)
            publish(settings, rows(4, "b"))
            assert loader.load_once().loaded == 4
            publish(settings, rows(2, "c"))
            assert loader.load_once().loaded == 2
        finally:
            loader.stop()
        assert len(loaded_ids(wh)) == 9


def test_a_loader_idle_past_the_consumers_inactive_threshold_loads_what_comes_after(
        make_workspace: Callable[..., Workspace], nats_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server deletes an ephemeral consumer unused for its inactive threshold (5
    minutes; 1 s here): after a quiet spell the loader stopped loading for good."""
    import time

    monkeypatch.setattr(StreamReader, "INACTIVE_SECONDS", 1.0)
    ws, settings = stream_workspace(make_workspace, nats_server.url)
    publish(settings, rows(3, "a"))
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        try:
            assert loader.load_once().loaded == 3
            assert consumers(nats_server.url)
            deadline = time.monotonic() + 30
            while consumers(nats_server.url) and time.monotonic() < deadline:
                time.sleep(0.2)  # idle: the server deletes the consumer
            assert not consumers(nats_server.url)
            publish(settings, rows(4, "b"))
            assert loader.load_once().loaded == 4
        finally:
            loader.stop()
        assert len(loaded_ids(wh)) == 7
