"""Sending email over SMTP: one reusable sender (alerts, scheduled reports) and the
dispatcher of the ``email_outbox`` queue that alert rules fill.

``EmailSender.from_url("smtp://user:password@host:587", sender="fleet@example.com")`` speaks
STARTTLS when the server offers it, ``smtps://`` speaks TLS from the start. The password is
never logged: errors name the host and port only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib
import asyncpg

from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.ingest.supervision import SupervisedTask
from fleetlink.cloud.notify.backoff import backoff_s

log = logging.getLogger(__name__)


class EmailError(RuntimeError):
    """Raised when a message cannot be sent; the message names the server, not the password."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "text/csv"


@dataclass(frozen=True, slots=True)
class EmailSender:
    """Sends messages through one SMTP server."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    timeout_s: float = 30.0

    @classmethod
    def from_url(cls, url: str, sender: str) -> EmailSender:
        """Return a sender for ``smtp://[user:password@]host[:port]`` or ``smtps://…``;
        raise EmailError for any other URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise EmailError("the SMTP URL must be smtp://host:port or smtps://host:port")
        tls = parts.scheme == "smtps"
        return cls(
            parts.hostname,
            parts.port or (465 if tls else 587),
            sender,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            tls,
        )

    def message(
        self,
        to: list[str],
        subject: str,
        body: str,
        attachments: tuple[Attachment, ...] = (),
    ) -> EmailMessage:
        """Return the message ``send`` would send."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(body)
        for attachment in attachments:
            maintype, _, subtype = attachment.mime_type.partition("/")
            message.add_attachment(
                attachment.content,
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return message

    async def send(
        self,
        to: list[str],
        subject: str,
        body: str,
        attachments: tuple[Attachment, ...] = (),
    ) -> None:
        """Send one message to ``to``; raise EmailError when the server refuses or is away."""
        if not to:
            raise EmailError("a message needs at least one recipient")
        try:
            await aiosmtplib.send(
                self.message(to, subject, body, attachments),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=None if not self.use_tls else False,
                timeout=self.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # SMTP errors may echo what was sent, never the password; keep the class and code.
            code = getattr(exc, "code", None)
            raise EmailError(
                f"SMTP server {self.host}:{self.port} did not take the message "
                f"({type(exc).__name__}{f' {code}' if code else ''})"
            ) from None


class EmailDispatcher:
    """Sends what ``fleetlink_notify`` queued in ``email_outbox``, with retries."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: EmailSender,
        poll_s: float = 1.0,
        max_attempts: int = 8,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 3600.0,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._poll_s = poll_s
        self._max_attempts = max_attempts
        self._backoff = (backoff_base_s, backoff_max_s)
        self.counters: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._task = SupervisedTask("email dispatcher", self._run, self.counters)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except DATABASE_UNAVAILABLE:
                sent = 0
            if not sent:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def send_due(self, limit: int = 20) -> int:
        """Send the messages due now; return how many were tried."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """UPDATE email_outbox SET attempts = attempts + 1,
                          next_attempt_at = now() + interval '5 minutes'
                   WHERE id IN (SELECT id FROM email_outbox
                                WHERE status = 'pending' AND next_attempt_at <= now()
                                ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                   RETURNING id, recipients, subject, body, attempts""",
                limit,
            )
        for row in rows:
            try:
                await self._sender.send(list(row["recipients"]), row["subject"], row["body"])
            except EmailError as exc:
                final = row["attempts"] >= self._max_attempts
                self.counters["email_failed" if final else "email_retried"] += 1
                log.warning("email %s not sent (attempt %d): %s", row["id"], row["attempts"], exc)
                async with self._pool.acquire() as conn:
                    await conn.execute(
                        """UPDATE email_outbox SET status = $2, last_error = $3,
                                  next_attempt_at = now() + make_interval(secs => $4)
                           WHERE id = $1""",
                        row["id"],
                        "failed" if final else "pending",
                        str(exc),
                        backoff_s(row["attempts"], *self._backoff),
                    )
                continue
            self.counters["email_sent"] += 1
            async with self._pool.acquire() as conn:
                await conn.execute(
                    "UPDATE email_outbox SET status = 'sent', sent_at = now(), last_error = NULL "
                    "WHERE id = $1",
                    row["id"],
                )
        return len(rows)
