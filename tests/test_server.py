"""server.py over a real socket: it loads the model once and answers on its port;
bad requests get a clear 4xx error and the server keeps serving."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Small bounds, so the tests that meet them are quick.
SERVER_ENV = {
    "BOT_CHAT_MAX_TURNS": "4",
    "BOT_HTTP_HEADER_TIMEOUT_S": "1",
    "BOT_HTTP_BODY_TIMEOUT_S": "1",
    "BOT_ALLOWED_ORIGINS": "https://tongdai1022.example",
}
pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="module")
def server(server_log: Path):
    port = _free_port()
    log = server_log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port), "--no-voice"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **SERVER_ENV},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # the model loads in 30 s alone, 5 min on busy cores
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("server did not start:\n" + server_log.read_text())
            time.sleep(0.5)
    yield base
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def post(url: str, body: bytes | dict, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_unknown_paths_and_methods_answer_json(server):
    assert post(server + "/api/nothing", {})[0] == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server + "/api/route")  # GET on a POST route
    assert e.value.code == 405 and "error" in json.loads(e.value.read())


def test_health_names_the_model(server):
    with urllib.request.urlopen(server + "/health") as r:
        body = json.loads(r.read())
    assert body["status"] == "ok" and body["model"].endswith(".tar.gz")


def test_route_endpoint(server):
    status, body = post(server + "/api/route", {"text": "nhà tôi hết gạo rồi"})
    assert status == 200
    assert body["route"] == "transfer:6" and body["text"] == "nhà tôi hết gạo rồi"


def test_chat_endpoint_runs_a_conversation(server):
    status, first = post(server + "/api/chat", {})
    assert status == 200 and first["actions"][0]["kind"] == "say"
    cid = first["conversation_id"]
    _, confirm = post(
        server + "/api/chat", {"conversation_id": cid, "text": "tôi muốn đi xét nghiệm"}
    )
    assert [a["kind"] for a in confirm["actions"]] == ["say"]
    _, done = post(server + "/api/chat", {"conversation_id": cid, "text": "vâng"})
    assert {"kind": "transfer", "route": "transfer:2"} in done["actions"]
    _, keypad = post(server + "/api/chat", {"conversation_id": cid, "digit": "0"})
    assert {"kind": "transfer", "route": "operator"} in keypad["actions"]


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/api/route", b"not json", "JSON object"),
        ("/api/route", b"[1, 2]", "JSON object"),
        ("/api/route", {"text": 5}, '"text" must be a string'),
        ("/api/route", {"text": "a" * 5000}, "too long"),
        ("/api/route", b"\xff\xfe", "JSON object"),
        ("/api/chat", {"conversation_id": "x"}, 'give "text" or "digit"'),
        ("/api/chat", {"conversation_id": "x", "digit": "x"}, '"digit"'),
        ("/api/chat", {"conversation_id": ""}, "conversation_id"),
    ],
)
def test_bad_requests_get_a_clear_error(server, path, body, message):
    status, reply = post(server + path, body)
    assert status == 400
    assert message in reply["error"]


def test_a_huge_body_is_refused_and_the_server_keeps_serving(server):
    status, reply = post(server + "/api/route", b'{"text": "' + b"a" * (2 * 1024 * 1024) + b'"}')
    assert status == 413 and "body size" in reply["error"]
    status, body = post(server + "/api/route", {"text": "nhánh hai"})
    assert status == 200 and body["route"] == "transfer:2"


# --- nothing pushes the server over (issue 9) -----------------------------------------


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def raw(base: str, data: bytes, then_wait: float = 10) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port_of(base)), timeout=then_wait) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


def test_chat_ids_are_a_namespace_no_call_can_be_in(server):
    _, first = post(server + "/api/chat", {})
    assert first["conversation_id"].startswith("chat-")
    for other in ("4f1c2a80-0000-4000-8000-000000000001", "web-" + "0" * 32, "anything"):
        status, reply = post(server + "/api/chat", {"conversation_id": other, "text": "alo"})
        assert status == 404 and "no such conversation" in reply["error"]


def test_a_conversation_has_a_turn_limit(server):
    _, first = post(server + "/api/chat", {})
    cid = first["conversation_id"]
    statuses = [
        post(server + "/api/chat", {"conversation_id": cid, "text": "alo"})[0] for _ in range(5)
    ]
    assert statuses == [200] * 4 + [429]


def test_json_only_with_its_content_type(server):
    status, reply = post(server + "/api/route", {"text": "alo"}, {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in reply["error"]


def test_foreign_origins_and_hosts_are_refused(server):
    text = {"text": "nhánh hai"}
    assert post(server + "/api/route", text, {"Origin": "https://evil.example"})[0] == 403
    assert post(server + "/api/route", text, {"Origin": server})[0] == 200  # its own page
    assert post(server + "/api/route", text, {"Origin": "https://tongdai1022.example"})[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    conn.request("GET", "/health", headers={"Host": f"rebound.evil.example:{port_of(server)}"})
    assert conn.getresponse().status == 403
    conn.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "\\ud800 nh\\u00e1nh hai"}',  # a lone surrogate
        b'{"conversation_id": "\\udfff", "text": "alo"}',
        b"[" * 30_000 + b"]" * 30_000,  # deeper than the parser's recursion, under 64 KiB
        b'{"text": ' + b"[" * 100 + b"]" * 100 + b"}",
    ],
    ids=["surrogate-in-text", "surrogate-in-id", "recursion", "nested-100"],
)
def test_unencodable_or_deep_json_is_a_400_and_one_line(server, server_log, body):
    before = server_log.read_text()
    for path in ("/api/route", "/api/chat"):
        status, reply = post(server + path, body)
        assert status == 400 and "JSON object" in reply["error"], reply
    time.sleep(0.5)
    new = server_log.read_text()[len(before) :]
    assert "Traceback" not in new and "internal error" not in new


def test_a_surrogate_in_a_turn_changes_nothing(server):
    _, first = post(server + "/api/chat", {})
    cid = first["conversation_id"]
    body = f'{{"conversation_id": "{cid}", "text": "\\udc80 tôi muốn đi xét nghiệm"}}'
    assert post(server + "/api/chat", body.encode())[0] == 400
    # The refused turns were not applied: the conversation still has its whole turn budget.
    statuses = [
        post(server + "/api/chat", {"conversation_id": cid, "text": "alo"})[0] for _ in range(4)
    ]
    assert statuses == [200] * 4


def test_half_sent_headers_are_cut_off(server):
    answer = raw(server, b"POST /api/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    assert answer == b""  # closed by the header deadline (1 s here), not held


def test_a_slow_body_gets_408(server):
    head = (
        b"POST /api/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    answer = raw(server, head + b'{"text": ')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]


def test_a_client_hanging_up_mid_body_is_not_a_server_error(server, server_log):
    before = server_log.read_text()
    head = (
        b"POST /api/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
        s.sendall(head + b'{"text": "al')
    time.sleep(1.5)
    status, _ = post(server + "/api/route", {"text": "nhánh hai"})
    assert status == 200
    new = server_log.read_text()[len(before) :]
    assert " ERROR " not in new and "Traceback" not in new, new


def test_garbage_is_logged_in_a_line_not_a_traceback(server, server_log):
    before = len(server_log.read_text())
    raw(server, bytes(range(256)) * 256)  # 64 KiB that are not HTTP
    time.sleep(0.5)
    new = server_log.read_text()[before:]
    assert "Traceback" not in new and len(new) < 2000, new[:3000]
    assert post(server + "/api/route", {"text": "nhánh hai"})[0] == 200


def test_the_log_has_timestamps_levels_and_the_start_up_lines(server, server_log):
    text = server_log.read_text()
    assert " INFO server [-] serving on http://" in text, text[-2000:]
    assert " INFO server [-] model " in text
    line = next(li for li in text.splitlines() if "serving on" in li)
    time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")


def test_all_twelve_keys_work_in_chat_as_on_the_phone(server):
    """Issue 13: '#', 7-9 and '*' got HTTP 400; a phone keypad has them."""
    _, first = post(server + "/api/chat", {})
    cid = first["conversation_id"]
    for key in "#789":
        status, reply = post(server + "/api/chat", {"conversation_id": cid, "digit": key})
        assert status == 200, reply
        assert [a["response"] for a in reply["actions"]] == ["utter_unused_key", "utter_menu"]
        assert reply["actions"][0]["text"] == "Dạ, phím này chưa dùng ạ."
    # A new conversation: this module's server allows four turns each (BOT_CHAT_MAX_TURNS).
    _, first = post(server + "/api/chat", {})
    cid = first["conversation_id"]
    _, question = post(
        server + "/api/chat", {"conversation_id": cid, "text": "tôi muốn đi xét nghiệm"}
    )
    status, again = post(server + "/api/chat", {"conversation_id": cid, "digit": "*"})
    assert status == 200 and again["actions"] == question["actions"]
    _, done = post(server + "/api/chat", {"conversation_id": cid, "digit": "6"})
    assert {"kind": "transfer", "route": "transfer:6"} in done["actions"]
