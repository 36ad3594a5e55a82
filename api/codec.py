"""The Temporal codec server protocol, so the Temporal UI and CLI can show decrypted payloads.

Payloads only ever hold secret references, never values; still, outside dev mode only an
admin may decode: they hold every account's inputs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from google.protobuf import json_format
from google.protobuf.message import Error as ProtobufError
from temporalio.api.common.v1 import Payloads

from api.auth import require_role, user_from_header
from api.deps import ServicesDep, SessionDep, client_address
from api.errors import bad_request
from core.secrets import ENCRYPTED_ENCODING, EncryptionCodec, SecretError

router = APIRouter(prefix="/codec", tags=["Temporal codec"])


def codec_caller(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Anyone in dev mode (the local UI sends no credentials); an admin otherwise: payloads of
    every account pass through here."""
    if not services.settings.dev_mode:
        user = user_from_header(session, authorization, services.auth, client_address(request))
        require_role(user, "admin")


async def _payloads(request: Request) -> Payloads:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
        return json_format.ParseDict(body, Payloads(), ignore_unknown_fields=True)
    except (ValueError, ProtobufError, json_format.ParseError) as exc:
        raise bad_request(f'payloads: expected {{"payloads": [...]}} ({exc})') from exc


def refuse_plain(payloads: Payloads) -> None:
    """400 naming the first payload runwright did not encrypt.

    Decoding is only for what runwright's own codec wrote. Passing anything else through
    would let a caller feed arbitrary bytes to the decoder and watch what comes back (an
    oracle); the Temporal UI, told 400, shows a batch as it is stored, and a plain payload
    is readable there anyway.
    """
    for index, payload in enumerate(payloads.payloads):
        encoding = payload.metadata.get("encoding", b"")
        if encoding != ENCRYPTED_ENCODING:
            shown = encoding.decode("utf-8", "replace")[:80]
            raise bad_request(
                f"payloads[{index}]: not encrypted by runwright (encoding {shown!r}); "
                f"only {ENCRYPTED_ENCODING.decode()} payloads are decoded"
            )


@router.post("/decode", dependencies=[Depends(codec_caller)])
async def decode(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Decrypt payloads encrypted by runwright; any other payload is refused (400)."""
    payloads = await _payloads(request)
    refuse_plain(payloads)
    try:
        decoded = await EncryptionCodec(services.settings.secret_key).decode(payloads.payloads)
    except SecretError as exc:
        raise bad_request(str(exc)) from exc
    return json_format.MessageToDict(Payloads(payloads=decoded))


@router.post("/encode", dependencies=[Depends(codec_caller)])
async def encode(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Encrypt payloads (the UI and CLI use this to send inputs)."""
    payloads = await _payloads(request)
    encoded = await EncryptionCodec(services.settings.secret_key).encode(payloads.payloads)
    return json_format.MessageToDict(Payloads(payloads=encoded))
