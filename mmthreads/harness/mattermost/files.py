"""Uploaded files: the second layer of the emulator's state (``api4/file.go``)."""

from __future__ import annotations

import mimetypes
import struct
from typing import TYPE_CHECKING, Final

from mmthreads.harness.mattermost.directory import Directory, Limits
from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.ids import wall_clock_ms
from mmthreads.harness.mattermost.models import FileInfo

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FileStore", "is_inline_safe"]

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_INLINE_PREFIXES: Final = ("image/", "video/", "audio/")


def is_inline_safe(mime_type: str) -> bool:
    """Whether the server serves this type ``inline`` rather than as an attachment."""
    return mime_type.startswith(_INLINE_PREFIXES) and mime_type != "image/svg+xml"


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None


class FileStore(Directory):
    """Files by id, with their bytes; a file belongs to one channel and at most one post."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(clock=clock, seed=seed, limits=limits)
        self.files: dict[str, FileInfo] = {}
        self.file_data: dict[str, bytes] = {}

    def upload_file(self, actor: str, channel_id: str, name: str, data: bytes) -> FileInfo:
        """Store an upload made by ``actor`` into ``channel_id``.

        Raises:
            AppError: 400 bad channel id or empty name, 403 not a member, 404 unknown channel,
                413 larger than ``limits.max_file_size``.
        """
        if not name:
            raise AppError.invalid_param("filename")
        self.channel_for(actor, channel_id)
        if len(data) > self.limits.max_file_size:
            raise AppError("api.file.upload_file.too_large_detailed.app_error", 413, name)
        now = self.now()
        ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
        mime = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
        info = FileInfo(
            id=self.new_id(),
            user_id=actor,
            channel_id=channel_id,
            create_at=now,
            update_at=now,
            name=name,
            extension=ext,
            size=len(data),
            mime_type=mime,
        )
        size = _png_size(data)
        if size is not None:
            info.width, info.height = size
            info.has_preview_image = True
        self.files[info.id] = info
        self.file_data[info.id] = data
        return info

    def file_info(self, actor: str, file_id: str) -> FileInfo:
        """The file's metadata, if ``actor`` can read its channel.

        Raises:
            AppError: 400 bad id, 404 unknown or deleted file, 403 not a member.
        """
        if len(file_id) != 26:
            raise AppError.invalid_url_param("file_id")
        info = self.files.get(file_id)
        if info is None or info.delete_at:
            raise AppError("app.file_info.get.app_error", 404)
        if not self.is_member(actor, info.channel_id):
            raise AppError.forbidden()
        return info

    def file_bytes(self, actor: str, file_id: str) -> tuple[FileInfo, bytes]:
        """The file's metadata and content (see ``file_info``)."""
        info = self.file_info(actor, file_id)
        return info, self.file_data[file_id]

    def _attach_files(self, actor: str, channel_id: str, post_id: str, ids: list[str]) -> list[str]:
        # Files that cannot be attached are silently dropped, as on the real server.
        attached = []
        for file_id in ids:
            info = self.files.get(file_id)
            if info is None or info.delete_at or info.user_id != actor:
                continue
            if info.channel_id != channel_id or info.post_id not in ("", post_id):
                continue
            info.post_id = post_id
            attached.append(file_id)
        return attached
