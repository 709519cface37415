"""Call records on a real SQLite file (and a throw-away PostgreSQL cluster when the server
binary is here): order and fields of turns, the article's figures, several writers at
once, asyncio use, and what survives a SIGKILL in the middle of a call."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.app.settings import Settings
from bot.store.calls import CallRecord, CallStore, StoreError, TurnRecord, resolve_url
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

HANOI = timezone(timedelta(hours=7))
# The seed article's reporting window: 19/8/2021 to 12:00 on 3/9/2021, Hanoi time.
SEED_START = datetime(2021, 8, 19, tzinfo=HANOI)
SEED_END = datetime(2021, 9, 3, 12, tzinfo=HANOI)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "calls.sqlite3"  # var/ does not exist yet: first use makes it


@pytest.fixture
def store(db_file: Path) -> Iterator[CallStore]:
    with CallStore(sqlite_url(db_file)) as s:
        yield s


def new_id() -> str:
    return str(uuid.uuid4())


# --- checks shared by the SQLite and the PostgreSQL tests ------------------------------


def check_round_trip(store: CallStore) -> None:
    """A call's turns come back in order with every field, times as aware UTC."""
    call_id = new_id()
    started = datetime(2021, 10, 1, 8, 30, 0, 123456, tzinfo=HANOI)  # after SEED_END
    store.start_call(call_id, "audiosocket", caller="0912345678", at=started)
    words = [
        {"word": "nối", "start": 0.42, "end": 0.61, "conf": 0.93},
        {"word": "máy", "start": 0.61, "end": 0.8, "conf": 0.88},
        {"word": "một", "start": 0.8, "end": 1.02, "conf": 1.0},
    ]
    written: list[dict[str, Any]] = [
        dict(kind="say", text="Tổng đài 1022 xin nghe. Anh chị cần hỗ trợ gì ạ?"),
        dict(speaker="system", kind="final_dropped", text="nối máy", started_ms=400),
        dict(
            speaker="caller",
            kind="utterance",
            text="nối máy một một lăm",
            route="transfer:1",
            intent="emergency",
            confidence=0.987,
            started_ms=420,
            ended_ms=1730,
            latency_ms=412,
            words=words,
        ),
        dict(kind="digit", text="1", route="transfer:1"),
        dict(kind="transfer", route="transfer:1"),
    ]
    ids = []
    for i, fields in enumerate(written):
        at = started + timedelta(seconds=i)
        # The store writes the speaker of each kind itself; the caller never chooses it.
        write = {k: v for k, v in fields.items() if k != "speaker"}
        ids.append(store.add_turn(call_id, at=at, **write))
    store.end_call(
        call_id,
        "transfer:1",
        "transferred to branch 1",
        at=started + timedelta(seconds=9),
        audio_path="var/audio/x.wav",
    )

    got = store.turns(call_id)
    assert [t.seq for t in got] == [1, 2, 3, 4, 5]
    assert [t.id for t in got] == ids
    for i, (turn, fields) in enumerate(zip(got, written, strict=True)):
        assert isinstance(turn, TurnRecord)
        expected: dict[str, Any] = dict(
            text=None,
            route=None,
            intent=None,
            confidence=None,
            started_ms=None,
            ended_ms=None,
            latency_ms=None,
            words=None,
        )
        expected.update(fields)
        for name, value in expected.items():
            assert getattr(turn, name) == value, (i, name)
        assert turn.call_id == call_id
        assert turn.at == started + timedelta(seconds=i)
        assert turn.at.tzinfo == timezone.utc  # stored in UTC whatever zone came in
    assert got[2].words == words  # Vietnamese word list round-trips through JSON

    call = store.get_call(call_id)
    assert call == CallRecord(
        id=call_id,
        transport="audiosocket",
        caller="0912345678",
        started_at=started,
        ended_at=started + timedelta(seconds=9),
        outcome="transfer:1",
        end_reason="transferred to branch 1",
        audio_path="var/audio/x.wav",
    )
    assert call is not None and call.started_at.tzinfo == timezone.utc
    assert store.get_call(new_id()) is None
    assert store.turns(new_id()) == []


# (outcome, how many) in the seed window: 3 answered, 6 transferred, 3 neither (12).
SEED_CALLS = [
    ("faq:lao_dong_tu_do", 1),
    ("faq:f0_spo2", 1),
    ("goodbye", 1),
    ("transfer:1", 2),
    ("transfer:5", 1),
    ("transfer:6", 1),
    ("operator", 2),
    ("fallback", 1),
    ("hangup", 1),
    ("error", 1),
]


def check_counts(store: CallStore) -> None:
    """The article's figures: received, answered, transferred (total and per branch)."""
    at = SEED_START + timedelta(hours=1)
    for outcome, n in SEED_CALLS:
        for _ in range(n):
            call_id = new_id()
            store.start_call(call_id, "simulated", at=at)
            store.end_call(call_id, outcome, "test", at=at + timedelta(minutes=2))
            at += timedelta(minutes=5)
    store.start_call(new_id(), "websocket", at=at)  # still running
    store.start_call(new_id(), "simulated", at=SEED_END + timedelta(days=1))  # after the window

    figures = store.counts(since=SEED_START, until=SEED_END)
    assert figures == {
        "received": 13,
        "answered": 3,
        "transferred": 6,
        "transfer:1": 2,
        "transfer:2": 0,
        "transfer:3": 0,
        "transfer:4": 0,
        "transfer:5": 1,
        "transfer:6": 1,
        "operator": 2,
        "fallback": 1,
        "hangup": 1,
        "transfer_failed": 0,
        "error": 1,
        "unfinished": 1,
    }
    rest = ("answered", "transferred", "fallback", "hangup", "transfer_failed", "error")
    rest += ("unfinished",)
    assert sum(figures[k] for k in rest) == figures["received"]
    assert store.counts(since=SEED_END, until=SEED_END + timedelta(days=2))["received"] == 1

    # The supervisor's lists: by outcome, by day, newest first, limited.
    transfers = store.calls(since=SEED_START, until=SEED_END, outcome="transfer:1")
    assert [c.outcome for c in transfers] == ["transfer:1", "transfer:1"]
    assert transfers[0].started_at > transfers[1].started_at
    first_day = store.calls(since=SEED_START, until=SEED_START + timedelta(days=1), limit=4)
    assert len(first_day) == 4
    assert first_day == sorted(first_day, key=lambda c: c.started_at, reverse=True)


def check_concurrent_writers(store: CallStore, threads: int = 8, per_call: int = 40) -> None:
    """Several threads, one call each, writing at once: nothing lost, every call in order."""
    call_ids = [new_id() for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def one_call(call_id: str) -> None:
        try:
            start.wait()
            store.start_call(call_id, "simulated")
            for i in range(per_call):
                store.add_turn(
                    call_id,
                    kind="utterance" if i % 2 == 0 else "say",
                    text=f"{call_id} {i}",
                    words=[{"word": "alo", "start": 0.0, "end": 0.2, "conf": 0.5}],
                )
            store.end_call(call_id, "faq:chi_tra", "answered")
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    workers = [threading.Thread(target=one_call, args=(c,)) for c in call_ids]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    for call_id in call_ids:
        got = store.turns(call_id)
        assert [t.seq for t in got] == list(range(1, per_call + 1))
        assert [t.text for t in got] == [f"{call_id} {i}" for i in range(per_call)]
        call = store.get_call(call_id)
        assert call is not None and call.outcome == "faq:chi_tra"


# --- SQLite ----------------------------------------------------------------------------


def test_turns_come_back_in_order_with_all_fields(store: CallStore, db_file: Path) -> None:
    check_round_trip(store)
    with sqlite3.connect(db_file) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_counts_give_the_articles_figures(store: CallStore) -> None:
    check_counts(store)


def test_the_recogniser_that_heard_a_call_is_recorded(store: CallStore) -> None:
    call_id = new_id()
    store.start_call(call_id, "simulated", asr_engine="vietasr:embedded-0.1.0.dev11")
    record = store.get_call(call_id)
    assert record is not None and record.asr_engine == "vietasr:embedded-0.1.0.dev11"
    other = new_id()
    store.start_call(other, "simulated")  # a call over the limit: no recogniser heard it
    unheard = store.get_call(other)
    assert unheard is not None and unheard.asr_engine is None


def test_an_older_database_gets_the_asr_engine_column(tmp_path: Path) -> None:
    # A calls table as the first release created it, without asr_engine, with a call in it.
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE calls (id TEXT PRIMARY KEY, transport TEXT NOT NULL, caller TEXT, "
            "started_at DATETIME NOT NULL, ended_at DATETIME, outcome TEXT, end_reason TEXT, "
            "audio_path TEXT)"
        )
        conn.execute(
            "INSERT INTO calls (id, transport, started_at) "
            "VALUES ('old-call', 'audiosocket', '2026-11-01 08:00:00.000000')"
        )
    with CallStore(f"sqlite:///{db}") as store:
        old = store.get_call("old-call")
        assert old is not None and old.asr_engine is None  # kept, with nothing invented
        store.start_call("new-call", "simulated", asr_engine="vosk:vosk-model-small-vn-0.4")
        new = store.get_call("new-call")
        assert new is not None and new.asr_engine == "vosk:vosk-model-small-vn-0.4"


def test_a_red_flag_is_kept_with_its_turn_and_older_databases_get_its_column(
    tmp_path: Path,
) -> None:
    # A turns table as the first release created it, without red_flag.
    db = tmp_path / "old.sqlite3"
    with CallStore(f"sqlite:///{db}") as store:
        store.start_call("old-call", "audiosocket")
        store.add_turn("old-call", kind="routed", text="khó thở", route="transfer:1")
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE turns DROP COLUMN red_flag")
    flag = {"rule": "spo2", "matched": "ô xy tám mươi tám", "route": "transfer:1"}
    with CallStore(f"sqlite:///{db}") as store:
        assert [t.red_flag for t in store.turns("old-call")] == [None]  # nothing invented
        store.add_turn("old-call", kind="routed", text="ô xy tám mươi tám", red_flag=flag)
        assert [t.red_flag for t in store.turns("old-call")] == [None, flag]


def test_concurrent_writers_from_several_threads(store: CallStore) -> None:
    check_concurrent_writers(store)


def test_two_store_instances_on_one_file(db_file: Path) -> None:
    """Two stores (as two processes would) opening a new SQLite file and writing at once."""
    errors: list[BaseException] = []

    def write(s: CallStore) -> None:
        try:
            check_concurrent_writers(s, 3, 20)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    with CallStore(sqlite_url(db_file)) as a, CallStore(sqlite_url(db_file)) as b:
        threads = [threading.Thread(target=write, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert a.counts()["received"] == b.counts()["received"] == 6


CHILD = textwrap.dedent(
    """
    import sys
    from bot.store.calls import CallStore

    store = CallStore(sys.argv[1])
    store.start_call("crash-call", "audiosocket", caller="0987654321")
    print(0, flush=True)
    n = 0
    while True:  # a call that never ends: the parent kills it mid-turn
        n += 1
        store.add_turn(
            "crash-call",
            kind="utterance" if n % 2 else "say",
            text=f"turn {n}",
            words=[{"word": "alo", "start": 0.0, "end": 0.2, "conf": 0.9}],
            latency_ms=n,
        )
        print(n, flush=True)  # reported only after the commit returned
    """
)


def test_a_call_survives_sigkill_mid_call(db_file: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, sqlite_url(db_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported = -1
    try:
        for line in child.stdout:
            reported = int(line)
            if reported >= 50:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)  # no atexit, no finally, no flush: a crash
        child.wait(timeout=30)
        # Read the rest through the same buffered reader the loop used: communicate()
        # reads the raw pipe and would lose lines the loop had already buffered.
        rest = child.stdout.read()
        err = child.stderr.read() if child.stderr else ""
    assert reported >= 50, f"the writer stopped early: {err}"
    committed = max([reported, *(int(n) for n in rest.split())])
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(db_file) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with CallStore(sqlite_url(db_file)) as store:
        got = store.turns("crash-call")
        # Every turn reported committed is there, in order; at most the one in progress
        # (committed but killed before it could say so) beyond that; nothing torn.
        assert committed <= len(got) <= committed + 1
        assert [t.seq for t in got] == list(range(1, len(got) + 1))
        assert [t.text for t in got] == [f"turn {n}" for n in range(1, len(got) + 1)]
        assert all(t.words and t.words[0]["word"] == "alo" for t in got)
        call = store.get_call("crash-call")
        assert call is not None and call.caller == "0987654321" and call.ended_at is None
        assert store.counts()["unfinished"] == 1
        # The file is usable after the crash: the call can be closed with a reason.
        store.add_turn("crash-call", kind="error", text="server restarted")
        store.end_call("crash-call", "error", "server stopped before the call ended")
        assert store.counts()["error"] == 1


def test_async_writes_keep_order_and_survive_cancellation(store: CallStore) -> None:
    call_ids = [new_id() for _ in range(4)]

    async def main() -> None:
        for call_id in call_ids:
            await store.async_start_call(call_id, "websocket")
        # Fire-and-forget, interleaved across calls: the writer keeps submission order.
        tasks = [
            asyncio.create_task(store.async_add_turn(call_id, kind="utterance", text=str(i)))
            for i in range(25)
            for call_id in call_ids
        ]
        await asyncio.gather(*tasks)
        # A call task cancelled (the caller hung up) while its write waits in the queue
        # behind a slow one: the write still lands. (The gate holds the writer thread.)
        gate = threading.Event()
        store._writer.submit(gate.wait, 30)
        last = asyncio.create_task(
            store.async_add_turn(call_ids[0], kind="call_ended", text="late")
        )
        await asyncio.sleep(0.05)
        last.cancel()
        gate.set()
        for call_id in call_ids:
            await store.async_end_call(call_id, "hangup", "caller hung up")
        turns = await store.async_turns(call_ids[1])
        assert [t.text for t in turns] == [str(i) for i in range(25)]
        assert (await store.async_get_call(call_ids[1])) is not None
        assert len(await store.async_calls(outcome="hangup")) == 4
        assert (await store.async_counts())["hangup"] == 4
        await store.aclose()

    asyncio.run(main())
    with CallStore(store.url) as again:
        assert [t.text for t in again.turns(call_ids[0])][-1] == "late"


def test_a_failed_write_raises_store_error_and_other_calls_go_on(
    store: CallStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = new_id()
    store.start_call(good, "simulated")
    with pytest.raises(StoreError, match="never started"):
        store.add_turn("no-such-call", kind="utterance", text="alo")
    with pytest.raises(StoreError, match="already recorded"):
        store.start_call(good, "simulated")
    with pytest.raises(StoreError, match="never started"):
        store.end_call("no-such-call", "hangup", "caller hung up")
    assert any("no-such-call" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    # The good call is untouched by its neighbours' failures.
    store.add_turn(good, kind="utterance", text="alo")
    store.end_call(good, "hangup", "caller hung up")
    # A second end keeps the first reason (the real one).
    store.end_call(good, "error", "protocol error: unknown frame type 0x42")
    call = store.get_call(good)
    assert call is not None and (call.outcome, call.end_reason) == ("hangup", "caller hung up")
    assert [t.seq for t in store.turns(good)] == [1]


def test_an_unusable_location_is_a_clear_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with CallStore(sqlite_url(blocker / "var" / "calls.sqlite3")) as s:
        with pytest.raises(StoreError, match="cannot open the call store"):
            s.start_call(new_id(), "simulated")


def test_bad_arguments_are_value_errors(store: CallStore) -> None:
    call_id = new_id()
    with pytest.raises(ValueError, match="Transport"):
        store.start_call(call_id, "carrier-pigeon")
    store.start_call(call_id, "simulated")
    with pytest.raises(ValueError, match="NoteKind"):
        store.add_turn(call_id, kind="partial_dropped")  # documented once, never written
    with pytest.raises(ValueError, match="outcome"):
        store.end_call(call_id, "transfer:9", "no such branch")
    with pytest.raises(ValueError, match="limit"):
        store.calls(limit=0)


def test_closed_store_refuses_work(db_file: Path) -> None:
    s = CallStore(sqlite_url(db_file))
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.start_call(new_id(), "simulated")


READ_THE_URL = (
    "from bot.app.settings import Settings; from bot.store.calls import CallStore; "
    "print(CallStore(Settings.from_env().database_url).url)"
)


def test_database_url_setting_and_relative_paths(tmp_path: Path) -> None:
    # Constructing a store touches nothing: no var/ appears in the project.
    assert CallStore(Settings().database_url).url == f"sqlite:///{ROOT / 'var' / 'calls.sqlite3'}"
    assert resolve_url("sqlite:///var/x.db", ROOT) == f"sqlite:///{ROOT / 'var' / 'x.db'}"
    assert resolve_url("postgresql://u@h/db", ROOT) == "postgresql://u@h/db"
    relative = Settings.from_env({"BOT_DATABASE_URL": "sqlite:///var/y.db"}).database_url
    assert relative == f"sqlite:///{ROOT / 'var' / 'y.db'}"
    url = sqlite_url(tmp_path / "elsewhere.db")
    out = subprocess.run(
        [sys.executable, "-c", READ_THE_URL],
        cwd=ROOT,
        env={**os.environ, "BOT_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == url


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a Unix socket in a temporary directory."""
    postgres = shutil.which("postgres")
    if postgres is None:
        pytest.skip("no `postgres` binary on PATH (Debian package postgresql is not installed)")
    bindir = Path(postgres).resolve().parent
    initdb = bindir / "initdb"
    if not initdb.exists():
        pytest.skip(f"`postgres` found at {postgres} but no initdb beside it")
    run_as: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="store-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        users = [u for u in ("postgres", "nobody") if _user_exists(u)]
        if not users:
            pytest.skip("running as root and no unprivileged user to run PostgreSQL as")
        pw = pwd.getpwnam(users[0])
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    data, log = tmp / "data", tmp / "postgres.log"
    subprocess.run(
        [str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        + ["--locale=C", "--no-sync"],
        cwd=tmp,
        capture_output=True,
        check=True,
        **run_as,
    )
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [postgres, "-D", str(data), "-k", str(tmp), "-p", "5432"]
            + ["-c", "listen_addresses=", "-c", "fsync=off"],
            cwd=tmp,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **run_as,
        )
    url = f"postgresql+psycopg2://postgres@/postgres?host={tmp}&port=5432"
    try:
        _wait_for_postgres(server, tmp, log)
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_for_postgres(server: subprocess.Popen[bytes], sockdir: Path, log: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            pytest.fail(f"postgres exited: {log.read_text(errors='replace')}")
        try:
            psycopg2.connect(
                host=str(sockdir), port=5432, user="postgres", dbname="postgres"
            ).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail(f"postgres did not start: {log.read_text(errors='replace')}")
            time.sleep(0.2)


def test_postgresql(postgres_url: str) -> None:
    with CallStore(postgres_url) as store:
        check_round_trip(store)
        check_counts(store)
        check_concurrent_writers(store)
        with pytest.raises(StoreError, match="never started"):
            store.add_turn("no-such-call", kind="utterance")
        assert "postgres@" in repr(store)


# --- issue 9: private files, crash recovery, a reused id -------------------------------


def test_the_database_and_its_directory_are_private(tmp_path: Path) -> None:
    db = tmp_path / "var" / "calls.sqlite3"
    old = os.umask(0o022)  # a permissive umask, as a shell usually has
    try:
        with CallStore(sqlite_url(db)) as records:
            call_id = new_id()
            records.start_call(call_id, "audiosocket")
            records.add_turn(call_id, kind="say", text="Xin chào")
            modes = {
                p.name: p.stat().st_mode & 0o777
                for p in (db.parent, db, db.with_name(db.name + "-wal"))
            }
    finally:
        os.umask(old)
    assert modes == {"var": 0o700, "calls.sqlite3": 0o600, "calls.sqlite3-wal": 0o600}


def test_calls_left_open_by_a_crash_are_closed_at_start_up(db_file: Path) -> None:
    with CallStore(sqlite_url(db_file)) as before:
        open_id, done_id = new_id(), new_id()
        before.start_call(open_id, "audiosocket")  # the process dies here
        before.start_call(done_id, "websocket")
        before.end_call(done_id, "goodbye", "the caller said goodbye")
    with CallStore(sqlite_url(db_file)) as after:
        assert after.close_abandoned() == 1
        call = after.get_call(open_id)
        assert call is not None and call.ended_at is not None
        assert (call.outcome, call.end_reason) == ("error", "server restarted")
        assert after.get_call(done_id).outcome == "goodbye"  # type: ignore[union-attr]
        assert after.counts()["unfinished"] == 0
        assert after.close_abandoned() == 0


def test_a_reused_id_is_a_duplicate_call(store: CallStore) -> None:
    from bot.store.calls import DuplicateCall

    call_id = new_id()
    store.start_call(call_id, "audiosocket")
    store.end_call(call_id, "hangup", "caller hung up")
    with pytest.raises(DuplicateCall):
        store.start_call(call_id, "audiosocket")


def test_a_transfer_that_failed_is_an_outcome(store: CallStore) -> None:
    call_id = new_id()
    store.start_call(call_id, "audiosocket")
    store.end_call(call_id, "transfer_failed", "caller hung up, after the transfer failed")
    assert store.get_call(call_id).outcome == "transfer_failed"  # type: ignore[union-attr]
