"""The device's side of enrollment and report upload: JSON over HTTP(S) with the standard
library, so the device needs nothing of the cloud's stack."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from fleetlink.edge.provision import ProvisionError
from fleetlink.shared.enrollment import EnrollRequest, EnrollResponse, InstallReport

_TIMEOUT_S = 15.0


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` and return the JSON answer.

    Raises:
        ProvisionError: the cloud cannot be reached, or refused (its reason is in the message).
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail") or exc.reason
        except ValueError:
            detail = exc.reason
        raise ProvisionError(f"the cloud refused ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProvisionError(
            f"cannot reach the cloud at {url}: {reason}; check the URL and the network"
        ) from None


def enroll(api_url: str, request: EnrollRequest) -> EnrollResponse:
    """Enroll with the cloud and return the device's identity and secrets.

    Raises:
        ProvisionError: refused (wrong, expired or used token, VIN mismatch) or unreachable.
    """
    answer = post_json(f"{api_url}/api/v1/enroll", request.model_dump(mode="json"))
    try:
        return EnrollResponse.model_validate(answer)
    except ValidationError as exc:
        raise ProvisionError(f"the cloud's answer is not an enrollment: {exc}") from None


def upload_report(api_url: str, report: InstallReport) -> dict[str, Any]:
    """Upload a signed install report; return the cloud's answer.

    Raises:
        ProvisionError: refused (bad signature, unknown device) or unreachable.
    """
    return post_json(f"{api_url}/api/v1/install-reports", report.model_dump(mode="json"))
