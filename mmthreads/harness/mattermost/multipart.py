"""Parsing ``multipart/form-data`` upload bodies.

No maintained multipart parser is installed with mmthreads, so this leans on the standard
library's MIME parser (``email.parser.BytesParser``): the HTTP ``Content-Type`` header is put in
front of the body as a synthetic MIME header, and the parser splits the parts.  Payload bytes
round-trip unchanged (the parser works on ``surrogateescape``-decoded text), and UTF-8 file
names come through.  Uploads are buffered whole, which the emulator can afford.
"""

from __future__ import annotations

import email.parser
import email.policy

import msgspec

__all__ = ["FormPart", "MultipartError", "parse_form_data"]


class MultipartError(ValueError):
    """The body is not a well-formed ``multipart/form-data`` body."""


class FormPart(msgspec.Struct, frozen=True):
    """One form field: ``filename`` is ``None`` for plain fields."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_form_data(content_type: str, body: bytes) -> list[FormPart]:
    """Split a ``multipart/form-data`` body into its parts, in order.

    Args:
        content_type: The request's ``Content-Type`` header (with its ``boundary``).
        body: The whole request body.

    Raises:
        MultipartError: Not multipart, no boundary, or a part without a field name.
    """
    if (
        not content_type.lower().startswith("multipart/form-data")
        or "boundary=" not in content_type
    ):
        raise MultipartError("not multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise MultipartError(f"malformed multipart body: {message.defects}")
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise MultipartError("form part without a name")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        declared = part.get("content-type")
        parts.append(
            FormPart(
                name=name,
                filename=part.get_filename(),
                content_type=part.get_content_type() if declared else None,
                data=data,
            )
        )
    return parts
