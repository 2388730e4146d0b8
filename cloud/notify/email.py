"""Send one email through the configured SMTP server (aiosmtplib), with optional attachments."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from fleetlink.cloud.settings import CloudSettings

log = logging.getLogger(__name__)


class EmailNotConfiguredError(RuntimeError):
    """Raised when a mail is due but FLEETLINK_SMTP_HOST is not set."""


class EmailSendError(RuntimeError):
    """Raised when the SMTP server refuses or cannot be reached; the message says which."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "text"
    subtype: str = "csv"


async def send_email(
    settings: CloudSettings,
    recipients: list[str],
    subject: str,
    body: str,
    attachments: tuple[Attachment, ...] = (),
) -> None:
    """Send a plain-text mail to ``recipients``; raise EmailNotConfiguredError or
    EmailSendError (never logs the password)."""
    if not settings.smtp_host:
        raise EmailNotConfiguredError("set FLEETLINK_SMTP_HOST (and _PORT, _FROM) to send mail")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content(body)
    for a in attachments:
        message.add_attachment(
            a.content, maintype=a.maintype, subtype=a.subtype, filename=a.filename
        )
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=password,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise EmailSendError(
            f"SMTP {settings.smtp_host}:{settings.smtp_port} did not take the mail: {exc}"
        ) from exc
    log.info("mailed %r to %d recipient(s)", subject, len(recipients))
