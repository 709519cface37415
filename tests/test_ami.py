"""The AMI client against a small loopback Asterisk written here from the AMI docs
(banner line, CRLF ``Key: Value`` lines, a blank line ending each message, answers
matched by ActionID, unrelated Events interleaved). Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest

from bot.app.settings import DEFAULT_TRANSFER_EXTENSIONS, Settings, SettingsError
from bot.transports.ami import (
    AmiClient,
    AmiError,
    AmiMessage,
    AmiParser,
    TransferPlan,
    TransferTarget,
    encode_action,
)

pytestmark = pytest.mark.unit

USER, SECRET = "bot1022", "s3cret"
KNOWN = "PJSIP/trunk-0000002a"
EVENT = (
    b"Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/other-00000001\r\n"
    b"Context: default\r\nExtension: 100\r\nApplication: Playback\r\n\r\n"
)


class FakeAsterisk:
    """Banner, Challenge, Login (plain or MD5, checked as Asterisk's manager.c does),
    Redirect, Getvar, Logoff. ``on_redirect`` picks the behaviour:
    "answer" (Success for KNOWN, Error otherwise), "silent" (never answers),
    "drop" (closes the connection), "drop_once" (closes it once, then answers),
    "reverse" (holds two Redirects, answers the second first)."""

    def __init__(
        self, on_redirect: str = "answer", banner: bytes = b"Asterisk Call Manager/9.0.0"
    ) -> None:
        self.on_redirect = on_redirect
        self.banner = banner
        self.actions: list[dict[str, str]] = []
        self.connections = 0
        self.finished = 0  # connections whose handler is done: every action read is recorded
        self.server: asyncio.Server | None = None
        self._held: list[tuple[asyncio.StreamWriter, dict[str, str]]] = []

    async def __aenter__(self) -> FakeAsterisk:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    # The AstDB entries the dial plan would have written (README: "Asterisk").
    astdb: ClassVar[dict[str, str]] = {"DB(bot1022/4f1c2a80-0000-4000-8000-000000000001)": KNOWN}

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def client(self, timeout: float = 5) -> AmiClient:
        return AmiClient("127.0.0.1", self.port, USER, SECRET, timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(self.banner + b"\r\n")
        logged_in = False
        challenge = ""
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = [line.partition(": ") for line in raw.decode().split("\r\n") if line]
                action = {key.lower(): value for key, _, value in lines}
                self.actions.append(action)
                name, action_id = action["action"].lower(), action.get("actionid", "")
                if name == "challenge" and action.get("authtype", "").lower() == "md5":
                    challenge = str(secrets.randbelow(10**9))
                    await self._say(
                        writer,
                        f"Response: Success\r\nActionID: {action_id}\r\n"
                        f"Challenge: {challenge}\r\n\r\n",
                    )
                elif name == "login":
                    if action.get("authtype", "").lower() == "md5":
                        key = hashlib.md5((challenge + SECRET).encode()).hexdigest()
                        good = bool(challenge) and action.get("key") == key
                    else:
                        good = action.get("secret") == SECRET
                    if action.get("username") != USER or not good:
                        await self._say(
                            writer,
                            f"Response: Error\r\nActionID: {action_id}\r\n"
                            "Message: Authentication failed\r\n\r\n",
                        )
                        return
                    logged_in = True
                    await self._say(
                        writer,
                        f"Response: Success\r\nActionID: {action_id}\r\n"
                        "Message: Authentication accepted\r\n\r\n"
                        "Event: FullyBooted\r\nPrivilege: system,all\r\n"
                        "Status: Fully Booted\r\n\r\n",
                    )
                elif not logged_in:
                    await self._say(writer, "Response: Error\r\nMessage: Permission denied\r\n\r\n")
                elif name == "redirect":
                    if not await self._redirect(writer, action):
                        return
                elif name == "getvar":
                    # The dial plan stored each AudioSocket call's channel in AstDB.
                    value = self.astdb.get(action["variable"], "")
                    await self._say(
                        writer,
                        f"Response: Success\r\nActionID: {action_id}\r\n"
                        f"Variable: {action['variable']}\r\nValue: {value}\r\n\r\n",
                    )
                elif name == "logoff":
                    await self._say(writer, "Response: Goodbye\r\nMessage: Thanks\r\n\r\n")
                    return
        except ConnectionError:
            return  # the client left while we were talking: its business
        finally:
            writer.close()
            self.finished += 1

    async def _redirect(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> bool:
        if self.on_redirect == "silent":
            return True
        if self.on_redirect == "drop":
            return False
        if self.on_redirect == "drop_once":  # the manager restarts mid-Redirect, then serves
            self.on_redirect = "answer"
            return False
        if self.on_redirect == "reverse":
            self._held.append((writer, action))
            if len(self._held) < 2:
                return True
            for held_writer, held in reversed(self._held):
                await self._say(held_writer, self._answer(held))
            return True
        await self._say(writer, self._answer(action))
        return True

    def _answer(self, action: dict[str, str]) -> str:
        action_id = action.get("actionid", "")
        # Another client's answer and an event first: the client must match by ActionID.
        noise = "Response: Success\r\nActionID: someone-else-7\r\nMessage: Pong\r\n\r\n"
        if action["channel"] == KNOWN:
            return noise + (
                f"Response: Success\r\nActionID: {action_id}\r\n"
                "Message: Redirect successful\r\n\r\n"
            )
        return noise + (
            f"Response: Error\r\nActionID: {action_id}\r\n"
            f"Message: Channel does not exist: {action['channel']}\r\n\r\n"
        )

    async def _say(self, writer: asyncio.StreamWriter, text: str) -> None:
        # An unrelated event, then the text cut into small reads.
        data = EVENT + text.encode()
        for i in range(0, len(data), 11):
            writer.write(data[i : i + 11])
            await writer.drain()
            await asyncio.sleep(0)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_redirect_of_a_known_channel_succeeds() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx:
            client = pbx.client()
            await client.redirect(KNOWN, "hotline-1022", "3")
            assert client.banner == "Asterisk Call Manager/9.0.0"
            await client.close()
            await until(lambda: pbx.finished == pbx.connections)
        challenge, login, redirect, logoff = pbx.actions
        assert (challenge["action"], challenge["authtype"]) == ("Challenge", "MD5")
        assert (login["action"], login["username"], login["authtype"]) == ("Login", USER, "MD5")
        assert "secret" not in login  # only MD5(challenge + secret) crosses the network
        assert login["actionid"] != redirect["actionid"]
        assert {k: redirect[k] for k in ("action", "channel", "context", "exten", "priority")} == {
            "action": "Redirect",
            "channel": KNOWN,
            "context": "hotline-1022",
            "exten": "3",
            "priority": "1",
        }
        assert logoff["action"] == "Logoff"

    run(main())


def test_redirect_of_an_unknown_channel_raises_with_asterisks_message() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx, pbx.client() as client:
            with pytest.raises(AmiError, match="Channel does not exist: PJSIP/nobody-1"):
                await client.redirect("PJSIP/nobody-1", "hotline-1022", "0")
            await client.redirect(KNOWN, "hotline-1022", "0")  # the connection is still good

    run(main())


def test_answers_are_matched_by_action_id_not_order() -> None:
    async def main() -> None:
        async with FakeAsterisk(on_redirect="reverse") as pbx, pbx.client() as client:
            good, bad = await asyncio.gather(
                client.redirect(KNOWN, "hotline-1022", "1"),
                client.redirect("PJSIP/gone-2", "hotline-1022", "2"),
                return_exceptions=True,
            )
            assert good is None
            assert isinstance(bad, AmiError) and "PJSIP/gone-2" in str(bad)

    run(main())


def test_no_answer_within_the_timeout_raises() -> None:
    async def main() -> None:
        async with FakeAsterisk(on_redirect="silent") as pbx, pbx.client(timeout=0.3) as client:
            with pytest.raises(AmiError, match="no answer to Redirect within 0.3 s"):
                await client.redirect(KNOWN, "hotline-1022", "1")

    run(main())


def test_a_dropped_connection_raises_then_reconnects() -> None:
    async def main() -> None:
        async with FakeAsterisk(on_redirect="drop") as pbx:
            client = pbx.client()
            with pytest.raises(AmiError, match="closed by Asterisk before answering"):
                await client.redirect(KNOWN, "hotline-1022", "1")
            assert not client.connected
            pbx.on_redirect = "answer"
            await client.redirect(KNOWN, "hotline-1022", "1")  # logs in again on its own
            assert pbx.connections == 2
            await client.close()

    run(main())


def test_refused_login_raises() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx:
            client = AmiClient("127.0.0.1", pbx.port, USER, "wrong", timeout=5)
            with pytest.raises(AmiError, match="login as 'bot1022'.*Authentication failed"):
                await client.redirect(KNOWN, "hotline-1022", "1")
            assert not client.connected

    run(main())


def test_something_else_on_the_port_is_refused() -> None:
    async def main() -> None:
        async with FakeAsterisk(banner=b"SSH-2.0-OpenSSH_9.2") as pbx:
            with pytest.raises(AmiError, match="unexpected banner"):
                await pbx.client().connect()

    run(main())


def test_nothing_listening_raises() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx:
            port = pbx.port
        with pytest.raises(AmiError, match="cannot connect to AMI"):
            await AmiClient("127.0.0.1", port, USER, SECRET, timeout=2).connect()

    run(main())


def test_line_breaks_in_values_are_refused_before_sending() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx:
            async with pbx.client() as client:
                with pytest.raises(AmiError, match="line break"):
                    await client.redirect(f"{KNOWN}\r\nAction: Hangup", "hotline-1022", "1")
            await until(lambda: pbx.finished == pbx.connections)
        assert "Redirect" not in [a["action"] for a in pbx.actions]

    run(main())


def test_no_secret_configured_is_a_clear_error() -> None:
    async def main() -> None:
        with pytest.raises(AmiError, match="BOT_AMI_SECRET"):
            await AmiClient("127.0.0.1", 1, USER, "", timeout=1).connect()

    run(main())


# --- the parser and encoder, without sockets ----------------------------------

STREAM = (
    b"Asterisk Call Manager/9.0.0\r\n"
    b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\n\r\n"
    b"\r\n"  # a stray blank line between messages
    b"Response: Error\nactionid: 2\nMessage: Channel does not exist: X\n\n"  # bare LF
)


def test_parser_handles_every_split() -> None:
    def parse(pieces: list[bytes]) -> tuple[str | None, list[AmiMessage]]:
        parser = AmiParser()
        messages = [m for piece in pieces for m in parser.feed(piece)]
        return parser.banner, messages

    banner, messages = parse([STREAM])
    assert banner == "Asterisk Call Manager/9.0.0"
    assert [(m.response, m.event, m.action_id) for m in messages] == [
        ("Success", None, "1"),
        (None, "FullyBooted", None),
        ("Error", None, "2"),  # keys are case-insensitive
    ]
    assert messages[2].get("MESSAGE") == "Channel does not exist: X"
    for cut in range(len(STREAM) + 1):
        assert parse([STREAM[:cut], STREAM[cut:]]) == (banner, messages), cut


def test_parser_refuses_endless_lines() -> None:
    parser = AmiParser(expect_banner=False)
    with pytest.raises(AmiError, match="without a line end"):
        parser.feed(b"x" * (2 << 20))


def test_encode_action() -> None:
    assert encode_action("Redirect", {"Channel": "PJSIP/a-1", "Priority": "1"}) == (
        b"Action: Redirect\r\nChannel: PJSIP/a-1\r\nPriority: 1\r\n\r\n"
    )
    with pytest.raises(AmiError):
        encode_action("Redirect", {"Channel": "a\nb"})


# --- transfer plan ------------------------------------------------------------


def test_default_plan_sends_branches_to_their_extensions() -> None:
    s = Settings()
    plan = TransferPlan.from_mapping(s.transfer_context, s.transfer_extensions)
    assert s.transfer_context == "hotline-1022"
    for n in range(1, 7):
        assert plan.target(f"transfer:{n}") == TransferTarget("hotline-1022", str(n))
    assert plan.target("operator") == ("hotline-1022", "0")
    with pytest.raises(KeyError, match="faq:x"):
        plan.target("faq:x")


def test_plan_with_own_contexts_and_a_missing_route() -> None:
    routes = {f"transfer:{n}": f"10{n}" for n in range(1, 7)} | {"operator": "9000@operators"}
    plan = TransferPlan.from_mapping("branches", routes)
    assert plan.target("transfer:2") == ("branches", "102")
    assert plan.target("operator") == ("operators", "9000")
    del routes["transfer:6"]
    with pytest.raises(ValueError, match="no transfer target for transfer:6"):
        TransferPlan.from_mapping("branches", routes)


def test_settings_mapping_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"BOT_TRANSFER_EXTENSIONS": " transfer:1=11 , operator=0@ops ,"}
    assert Settings.from_env(env).transfer_extensions == {"transfer:1": "11", "operator": "0@ops"}
    assert Settings.from_env({}).transfer_extensions["transfer:4"] == "4"
    assert DEFAULT_TRANSFER_EXTENSIONS.count("=") == 7
    with pytest.raises(SettingsError, match="BOT_TRANSFER_EXTENSIONS: expected key=value"):
        Settings.from_env({"BOT_TRANSFER_EXTENSIONS": "transfer:1"})
    with pytest.raises(SettingsError, match="BOT_AMI_PORT: expected a whole number, got 'x'"):
        Settings.from_env({"BOT_AMI_PORT": "x"})
    # Read when asked, not at import: the environment of the moment counts.
    monkeypatch.setenv("BOT_TRANSFER_CONTEXT", "elsewhere")
    assert Settings.from_env().transfer_context == "elsewhere"


def test_plan_transfers_through_ami() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx, pbx.client() as client:
            s = Settings()
            plan = TransferPlan.from_mapping(s.transfer_context, s.transfer_extensions)
            assert await plan.transfer(client, KNOWN, "operator") == ("hotline-1022", "0")
            with contextlib.suppress(AmiError):
                await plan.transfer(client, "PJSIP/gone-3", "transfer:1")
        redirects = [a for a in pbx.actions if a["action"] == "Redirect"]
        assert [(a["channel"], a["exten"]) for a in redirects] == [
            (KNOWN, "0"),
            ("PJSIP/gone-3", "1"),
        ]

    run(main())


def test_getvar_reads_the_channel_the_dial_plan_stored() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx, pbx.client() as client:
            key = "DB(bot1022/4f1c2a80-0000-4000-8000-000000000001)"
            assert await client.getvar(key) == KNOWN
            assert await client.getvar("DB(bot1022/unknown)") == ""
        getvar = [a for a in pbx.actions if a["action"] == "Getvar"]
        assert getvar[0]["variable"] == key and "channel" not in getvar[0]

    run(main())


def test_plain_login_sends_the_secret_when_asked_to() -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx:
            client = AmiClient("127.0.0.1", pbx.port, USER, SECRET, 5, auth="plain")
            await client.redirect(KNOWN, "hotline-1022", "3")
            await client.close()
            await until(lambda: pbx.finished == pbx.connections)
        assert (pbx.actions[0]["action"], pbx.actions[0]["secret"]) == ("Login", SECRET)

    run(main())


@pytest.mark.parametrize("auth", ["md5", "plain"])
def test_a_wrong_secret_is_refused_in_both_modes(auth: str) -> None:
    async def main() -> None:
        async with FakeAsterisk() as pbx:
            client = AmiClient("127.0.0.1", pbx.port, USER, "wrong", 5, auth=auth)
            with pytest.raises(AmiError, match="login .* failed: .*Authentication failed"):
                await client.redirect(KNOWN, "hotline-1022", "3")

    run(main())


def test_an_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="md5"):
        AmiClient("127.0.0.1", 5038, USER, SECRET, 5, auth="sha1")


def test_status_reports_login_and_the_last_error() -> None:
    async def scenario() -> None:
        async with FakeAsterisk(on_redirect="drop") as pbx, pbx.client() as client:
            assert client.status()["logged_in"] is True and client.status()["last_error"] is None
            with pytest.raises(AmiError) as caught:
                await client.redirect(KNOWN, "hotline-1022", "4")
            assert caught.value.kind == "connection_lost"
            await until(lambda: not client.connected)
            status = client.status()
            assert status["connected"] is False and status["logged_in"] is False
            assert "Redirect" in str(status["last_error"])
            assert "s3cret" not in str(status)

    run(scenario())


def test_nothing_listening_is_an_unavailable_manager() -> None:
    async def scenario() -> None:
        async with FakeAsterisk() as pbx:
            port = pbx.port
        client = AmiClient("127.0.0.1", port, USER, SECRET, timeout=2)
        with pytest.raises(AmiError) as caught:
            await client.redirect(KNOWN, "hotline-1022", "1")
        assert caught.value.kind == "ami_unavailable"
        assert "cannot connect" in str(client.status()["last_error"])

    run(scenario())
