"""Asterisk Manager Interface (AMI), for the one thing AudioSocket cannot do: transfer.

A transfer is ``Action: Redirect`` of the caller's channel to a dial-plan context
and extension per branch (docs.asterisk.org, AMI_Actions/Redirect). The wire format:
after connecting, Asterisk sends one banner line (``Asterisk Call Manager/x.y.z``);
then every message is ``Key: Value`` lines ending in CRLF, and a blank line ends the
message. We send ``Action:`` messages with an ``ActionID``; Asterisk answers each
with a ``Response:`` carrying the same ``ActionID``, and may interleave unrelated
``Event:`` messages at any time, so answers are matched by ``ActionID``, never by
order. Keys are case-insensitive (Asterisk compares them so).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from bot.vocabulary import TRANSFER_ROUTES, Route

log = logging.getLogger(__name__)

_READ_BYTES = 4096
_MAX_PENDING_BYTES = 1 << 20  # a "line" longer than this is not AMI: stop, don't buffer forever


class AmiError(Exception):
    """An AMI action failed: refused by Asterisk, not answered in time, or cut off.

    ``kind`` says which, in one word (a transfer's failure reason on /metrics):
    ``ami_unavailable`` (no connection or login), ``refused`` (Asterisk answered Error),
    ``timeout``, ``connection_lost``, ``error``."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AmiMessage:
    """One AMI message: its header lines in order (a key may repeat, e.g. Variable)."""

    fields: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        key = key.lower()
        return next((v for k, v in self.fields if k.lower() == key), default)

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


class AmiParser:
    """Sans-IO: bytes from Asterisk in, the banner and messages out.

    Lines end in CRLF; a bare LF is accepted too (it costs nothing and some proxies
    rewrite line ends). Lines without a colon (``Response: Follows`` command output)
    are kept with an empty key."""

    def __init__(self, expect_banner: bool = True) -> None:
        self.banner: str | None = None if expect_banner else ""
        self._buffer = bytearray()
        self._lines: list[tuple[str, str]] = []

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buffer += data
        messages: list[AmiMessage] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            line = raw.decode("utf-8", errors="replace")
            if self.banner is None:
                self.banner = line
            elif not line:
                if self._lines:  # extra blank lines between messages carry nothing
                    messages.append(AmiMessage(tuple(self._lines)))
                    self._lines = []
            else:
                key, sep, value = line.partition(":")
                self._lines.append((key.strip(), value.strip()) if sep else ("", line))
        if len(self._buffer) > _MAX_PENDING_BYTES:
            raise AmiError(f"AMI sent {len(self._buffer)} bytes without a line end")
        return messages


def encode_action(action: str, fields: Mapping[str, str]) -> bytes:
    """One action message. A CR or LF in a value would start a new header (injection:
    a channel name could smuggle in a second action), so it is refused."""
    lines = [("Action", action), *fields.items()]
    for key, value in lines:
        if any(c in f"{key}{value}" for c in "\r\n") or ":" in key:
            raise AmiError(f"refusing to send AMI header {key!r}: {value!r} (line break)")
    return "".join(f"{key}: {value}\r\n" for key, value in lines).encode() + b"\r\n"


class AmiClient:
    """One AMI connection, logged in, with any number of actions in flight.

    ``redirect`` connects (and logs in) on first use and again after the connection
    dropped, so a PBX restart between two transfers costs nothing but a reconnect."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        timeout: float,
        auth: str = "md5",
    ) -> None:
        if auth not in ("md5", "plain"):
            raise ValueError(f"AMI auth must be 'md5' or 'plain', not {auth!r}")
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.auth = auth
        self.timeout = timeout
        self.banner: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:8]  # ActionIDs unique across clients too
        self._connect_lock = asyncio.Lock()
        # For /health: the manager is a dependency of every transfer.
        self.logged_in = False
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    @property
    def connected(self) -> bool:
        return self._read_task is not None and not self._read_task.done()

    def status(self) -> dict[str, object]:
        """The dependency's state for /health (never the secret)."""
        return {
            "address": f"{self.host}:{self.port}",
            "connected": self.connected,
            "logged_in": self.connected and self.logged_in,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
        }

    def note_failure(self, error: AmiError) -> AmiError:
        self.last_error = str(error)
        self.last_error_at = datetime.now(timezone.utc)
        return error

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, read the banner, log in. AmiError if any step fails or times out."""
        async with self._connect_lock:
            if self.connected:
                return
            if not self._secret:
                raise self.note_failure(
                    AmiError("no AMI secret configured (set BOT_AMI_SECRET)", "ami_unavailable")
                )
            where = f"{self.host}:{self.port}"
            try:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout
                )
            except (OSError, asyncio.TimeoutError) as e:
                raise self.note_failure(
                    AmiError(f"cannot connect to AMI at {where}: {e!r}", "ami_unavailable")
                ) from e
            parser = AmiParser()
            try:
                await asyncio.wait_for(self._read_banner(parser), self.timeout)
            except (OSError, ValueError, asyncio.TimeoutError, AmiError) as e:
                # ValueError: a first "line" longer than the stream's limit is no banner.
                await self._disconnect()
                raise self.note_failure(
                    AmiError(f"no AMI banner from {where}: {e!r}", "ami_unavailable")
                ) from e
            self._read_task = asyncio.create_task(self._read_loop(parser), name="ami-read")
            try:
                await self._login()
            except AmiError as e:
                await self._disconnect()
                raise self.note_failure(
                    AmiError(
                        f"AMI login as {self.username!r} at {where} failed: {e}", "ami_unavailable"
                    )
                ) from e
            self.logged_in = True
            log.info("AMI: logged in to %s (%s)", where, self.banner)

    async def _login(self) -> None:
        fields = {"Username": self.username, "Events": "off"}
        if self.auth == "plain":
            fields["Secret"] = self._secret
        else:
            # Challenge-response: the secret never crosses the network, only
            # MD5(challenge + secret), as Asterisk's manager checks it.
            reply = await self._action("Challenge", {"AuthType": "MD5"})
            challenge = reply.get("Challenge")
            if not challenge:
                raise AmiError("Asterisk sent no MD5 challenge")
            key = hashlib.md5((challenge + self._secret).encode(), usedforsecurity=False)
            fields.update({"AuthType": "MD5", "Key": key.hexdigest()})
        await self._action("Login", fields)

    async def _read_banner(self, parser: AmiParser) -> None:
        assert self._reader is not None
        first = await self._reader.readline()
        if not first.endswith(b"\n"):
            raise AmiError("connection closed before the banner")
        parser.feed(first)
        self.banner = parser.banner
        if not (self.banner or "").startswith("Asterisk Call Manager"):
            raise AmiError(f"unexpected banner {self.banner!r}")

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None:
        """Send the channel to ``exten@context`` at ``priority``; return once Asterisk
        answered Success. AmiError on an Error answer (its Message says why), on no
        answer within the timeout, or when the connection drops first."""
        await self.connect()
        fields = {"Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority)}
        try:
            await self._action("Redirect", fields)
        except AmiError as e:
            raise self.note_failure(
                AmiError(f"Redirect of {channel} to {exten}@{context} failed: {e}", e.kind)
            ) from e
        log.info("AMI: redirected %s to %s@%s,%d", channel, exten, context, priority)

    async def getvar(self, variable: str, channel: str | None = None) -> str:
        """A variable's value; without ``channel`` a global variable or a function such
        as ``DB(family/key)``, which is how the dial plan hands over the channel name
        of an AudioSocket call (README, "Asterisk"). AmiError on failure; "" if unset."""
        await self.connect()
        fields = {"Variable": variable, **({"Channel": channel} if channel else {})}
        reply = await self._action("Getvar", fields)
        return reply.get("Value") or ""

    async def _action(self, action: str, fields: Mapping[str, str]) -> AmiMessage:
        """Send one action and wait for its Success answer (AmiError otherwise)."""
        writer = self._writer
        if writer is None or not self.connected:
            raise AmiError("not connected", "connection_lost")
        action_id = f"bot1022-{self._id_prefix}-{next(self._ids)}"
        data = encode_action(action, {**fields, "ActionID": action_id})
        answer: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = answer
        try:
            writer.write(data)
            await writer.drain()
            reply = await asyncio.wait_for(answer, self.timeout)
        except asyncio.TimeoutError as e:
            raise AmiError(f"no answer to {action} within {self.timeout:g} s", "timeout") from e
        except OSError as e:
            raise AmiError(
                f"connection lost while sending {action}: {e!r}", "connection_lost"
            ) from e
        finally:
            self._pending.pop(action_id, None)
        if (reply.response or "").lower() != "success":
            message = reply.get("Message") or "no message"
            raise AmiError(f"Asterisk answered {reply.response or 'nothing'}: {message}", "refused")
        return reply

    async def _read_loop(self, parser: AmiParser) -> None:
        reader = self._reader
        assert reader is not None
        reason = "connection closed by Asterisk"
        try:
            while data := await reader.read(_READ_BYTES):
                for message in parser.feed(data):
                    self._deliver(message)
        except OSError as e:
            reason = f"connection lost: {e!r}"
        except AmiError as e:
            reason = str(e)
        except asyncio.CancelledError:
            reason = "connection closed by the bot"
            raise
        finally:
            # Anything still waiting will never be answered on this connection.
            self.logged_in = False
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(AmiError(f"{reason} before answering", "connection_lost"))
            if not reason.endswith("by the bot"):
                self.last_error = reason
                self.last_error_at = datetime.now(timezone.utc)
            if self._writer is not None:
                self._writer.close()
            log.info("AMI: %s", reason)

    def _deliver(self, message: AmiMessage) -> None:
        answer = self._pending.get(message.action_id or "")
        if message.response is not None and answer is not None and not answer.done():
            answer.set_result(message)
        elif message.event is not None:
            log.debug("AMI event %s ignored", message.event)  # Events: off, but some still come
        else:
            log.debug("AMI message for no pending action: %s", message.fields)

    async def _disconnect(self) -> None:
        self.logged_in = False
        task, self._read_task = self._read_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.timeout)

    async def close(self) -> None:
        """Log off politely when possible, then close."""
        if self.connected and self._writer is not None:
            with contextlib.suppress(AmiError, OSError):
                self._writer.write(encode_action("Logoff", {}))
        await self._disconnect()


class TransferTarget(NamedTuple):
    context: str
    exten: str


def _required_routes() -> tuple[Route, ...]:
    return TRANSFER_ROUTES


@dataclass(frozen=True)
class TransferPlan:
    """Where each transfer route goes in the dial plan (configured by the operator)."""

    targets: Mapping[Route, TransferTarget]

    @classmethod
    def from_mapping(cls, context: str, extensions: Mapping[str, str]) -> TransferPlan:
        """``route -> exten`` or ``route -> exten@context``; the default context otherwise.

        Every transfer route must have a target: a branch with nowhere to go is found
        at start-up, not in the middle of an emergency call."""
        targets: dict[Route, TransferTarget] = {}
        for name, value in extensions.items():
            route = Route(name)  # a misspelt route is an error at start-up
            exten, _, own_context = value.partition("@")
            if not exten:
                raise ValueError(f"transfer target of {name!r} has no extension: {value!r}")
            targets[route] = TransferTarget(own_context or context, exten)
        missing = [route for route in _required_routes() if route not in targets]
        if missing:
            raise ValueError(f"no transfer target for {', '.join(missing)}")
        return cls(targets)

    def target(self, route: Route) -> TransferTarget:
        try:
            return self.targets[route]
        except KeyError:
            raise KeyError(f"no transfer target for route {route!r}") from None

    async def transfer(self, client: AmiClient, channel: str, route: Route) -> TransferTarget:
        """Redirect the channel to the route's target; AmiError if Asterisk refuses."""
        target = self.target(route)
        await client.redirect(channel, target.context, target.exten)
        return target
