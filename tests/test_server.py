"""server.py over a real socket: it loads the model once and answers on its port;
bad requests get a clear 4xx error and the server keeps serving."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("server did not start:\n" + proc.stdout.read().decode())
            time.sleep(0.5)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def post(url: str, body: bytes | dict) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
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
    _, keypad = post(server + "/api/chat", {"conversation_id": "other", "digit": "0"})
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
        ("/api/chat", {"conversation_id": "x", "digit": "9"}, '"digit"'),
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
