"""The cards still waiting for an answer, kept in a small file so they survive a restart.

A card (``mmthreads.core.cards``) is posted when OpenCode waits for a permission or an answer.
Its request id, post id and thread are written to ``<stem>.cards.json`` next to the mapping file
while it waits, so a restarted bridge edits the same card instead of losing it; whether the
request is still pending is then asked of OpenCode (``mmthreads.runtime.controls``). A missing
or unreadable file is an empty list: the worst outcome is a card left as it was and a new one
posted for a request still pending.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import msgspec

from mmthreads.atomic_file import write_atomically
from mmthreads.core.agent_events import PermissionAsked, QuestionAsked

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["CardRecord", "cards_path", "decode_cards", "encode_cards", "load_cards", "save_cards"]

logger = logging.getLogger(__name__)

_VERSION: Final = 1


class CardRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One card waiting for an answer.

    Attributes:
        post_id: The card's post.
        thread: The session whose thread holds the card (a subagent's parent, for a subagent).
        asked_ms: When the request was first seen (epoch ms; the permission timeout counts
            from it).
        request: The request as OpenCode sent it.
    """

    post_id: str
    thread: str
    asked_ms: int
    request: PermissionAsked | QuestionAsked


class _CardFile(msgspec.Struct, frozen=True, kw_only=True):
    version: int = _VERSION
    cards: list[CardRecord] = msgspec.field(default_factory=list)


_decoder: Final = msgspec.json.Decoder(_CardFile)
_encoder: Final = msgspec.json.Encoder(order="deterministic")


def cards_path(mapping_file: Path) -> Path:
    """The cards file that goes with ``mapping_file``."""
    return mapping_file.with_name(f"{mapping_file.stem}.cards.json")


def encode_cards(records: Sequence[CardRecord]) -> bytes:
    """The file's content for ``records``."""
    return msgspec.json.format(_encoder.encode(_CardFile(cards=list(records))), indent=2)


def decode_cards(data: bytes) -> list[CardRecord]:
    """The records in a file's content.

    Raises:
        msgspec.DecodeError: The content is not a cards file.
    """
    return _decoder.decode(data).cards


def load_cards(path: Path) -> list[CardRecord]:
    """The records of the file at ``path``; none when it is missing or unreadable (logged)."""
    try:
        return decode_cards(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, msgspec.DecodeError) as exc:
        logger.warning("cannot read the cards file %s: %s", path, exc)
        return []


def save_cards(path: Path, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` (atomically)."""
    write_atomically(path, data)
