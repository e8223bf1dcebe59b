"""Files crossing the bridge: safe names, what a model can take, and ``data:`` URIs.

Pure functions.  The runtime fetches a user's attachment from Mattermost and asks
:func:`refusal` whether the session's model can take it; it turns an agent's ``file`` part into
bytes only through :func:`decode_data_uri`, which accepts ``data:`` URIs and nothing else, so no
path or URL OpenCode names is ever read.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import TYPE_CHECKING, Final, Literal, TypeAlias
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from mmthreads.wire.opencode_normalise import ModelInfo

__all__ = [
    "FileKind",
    "decode_data_uri",
    "file_kind",
    "refusal",
    "safe_filename",
]

#: What a model is asked to take a file as.
FileKind: TypeAlias = Literal["text", "image", "pdf", "other"]

#: Longest file name kept (characters, before the extension is cut back).
MAX_NAME: Final = 100
_UNSAFE: Final = re.compile(r"[^\w.+-]+")
_TEXT_TYPES: Final = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
        "application/x-httpd-php",
        "application/x-python",
    }
)


def safe_filename(name: str, *, fallback: str = "file") -> str:
    """A file name safe to show and to store: no path, no control or odd characters.

    Keeps letters, digits, ``.``, ``_``, ``+`` and ``-`` (other runs become ``_``), drops any
    directory part (``/`` or ``\\``) and leading dots, and cuts the name to :data:`MAX_NAME`
    characters keeping a short extension.

    Args:
        name: The name as given (by a user's upload or an agent's file part).
        fallback: Used when nothing is left.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip("._") or fallback
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            base = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            base = base[:MAX_NAME]
    return base


def file_kind(mime: str) -> FileKind:
    """How a file of this MIME type reaches a model: as text, an image, a PDF, or not at all."""
    kind = mime.split(";", 1)[0].strip().lower()
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml")):
        return "text"
    if kind.startswith("image/"):
        return "image"
    if kind == "application/pdf":
        return "pdf"
    return "other"


def refusal(mime: str, model: ModelInfo | None) -> str | None:
    """Why a file of ``mime`` cannot go to ``model``, or None when it can.

    Text always can (OpenCode inlines it).  Images and PDFs need the model's input capability;
    with the model unknown (its server's catalog could not be read) they are sent and OpenCode
    decides.  Anything else (archives, binaries) is not sent.
    """
    kind = file_kind(mime)
    if kind == "text":
        return None
    if kind == "other":
        shown = mime or "unknown type"
        return f"{shown} files cannot be given to a model; send text, images or PDFs"
    if model is None:
        return None
    able = model.image_input if kind == "image" else model.pdf_input
    if able:
        return None
    what = "images" if kind == "image" else "PDFs"
    return f"the model {model.provider_id}/{model.model_id} does not take {what}"


def decode_data_uri(url: str, *, max_bytes: int) -> tuple[str, bytes] | None:
    """``(mime, bytes)`` of a ``data:`` URI no larger than ``max_bytes``, else None.

    Anything but a ``data:`` URI (``file://`` paths, ``http`` URLs) gives None: the bridge
    never reads what OpenCode only points at.
    """
    if not url.startswith("data:"):
        return None
    header, comma, payload = url[5:].partition(",")
    if not comma:
        return None
    fields = header.split(";")
    mime = fields[0].strip() or "text/plain"
    if "base64" in (f.strip().lower() for f in fields[1:]):
        # 4 base64 characters carry 3 bytes: refuse before decoding what is too large.
        if len(payload) * 3 // 4 > max_bytes + 3:
            return None
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            return None
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        return None
    return mime, data
