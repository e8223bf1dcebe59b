"""A human at the keyboard: acts through the same REST API the web app uses.

``Human`` sends what Client4 sends (``Authorization: BEARER``, ``X-Requested-With``), so a test
that has a person message the bot exercises the emulator exactly as a real session would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import msgspec

from mmthreads.harness.mattermost.models import Channel, FileInfo, Post, Reaction

if TYPE_CHECKING:
    from types import TracebackType

    from mmthreads.harness.mattermost.models import Account

__all__ = ["Human"]

T = TypeVar("T")


class _Upload(msgspec.Struct):
    file_infos: list[FileInfo]
    client_ids: list[str]


class Human:
    """A person using Mattermost through its REST API.

    Args:
        account: Who acts.
        url: The server's base URL.
        client: An HTTP client to share (the human owns a new one otherwise).

    Errors raise ``httpx.HTTPStatusError`` (its response holds the ``AppError``).
    """

    def __init__(
        self, account: Account, url: str, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.account = account
        self.url = url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._headers = {
            "Authorization": f"BEARER {account.token}",
            "X-Requested-With": "XMLHttpRequest",
        }

    def __repr__(self) -> str:
        return f"<Human @{self.account.username}>"

    async def __aenter__(self) -> Human:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this human created it."""
        if self._owns_client:
            await self._client.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send an authenticated request to ``/api/v4`` + ``path``; raise on 4xx/5xx."""
        response = await self._client.request(
            method, f"{self.url}/api/v4{path}", headers=self._headers, **kwargs
        )
        response.raise_for_status()
        return response

    async def _call(self, type_: type[T], method: str, path: str, **kwargs: Any) -> T:
        response = await self.request(method, path, **kwargs)
        return msgspec.json.decode(response.content, type=type_)

    async def dm_with(self, other: Account | str) -> Channel:
        """Open (find or create) the direct channel with ``other`` (an account or user id)."""
        other_id = other if isinstance(other, str) else other.id
        return await self._call(
            Channel, "POST", "/channels/direct", json=[self.account.id, other_id]
        )

    async def post(
        self,
        channel_id: str,
        message: str,
        root_id: str | None = None,
        file_ids: list[str] | None = None,
        props: dict[str, Any] | None = None,
    ) -> Post:
        """Write a message (a reply when ``root_id`` is given)."""
        body: dict[str, Any] = {"channel_id": channel_id, "message": message}
        if root_id:
            body["root_id"] = root_id
        if file_ids:
            body["file_ids"] = file_ids
        if props:
            body["props"] = props
        return await self._call(Post, "POST", "/posts", json=body)

    async def edit(self, post_id: str, message: str) -> Post:
        """Change the text of one of the human's posts."""
        return await self._call(Post, "PUT", f"/posts/{post_id}/patch", json={"message": message})

    async def delete(self, post_id: str) -> None:
        """Delete one of the human's posts (a root takes its replies along)."""
        await self.request("DELETE", f"/posts/{post_id}")

    async def react(self, post_id: str, emoji: str) -> Reaction:
        """Add a reaction."""
        body = {"user_id": self.account.id, "post_id": post_id, "emoji_name": emoji}
        return await self._call(Reaction, "POST", "/reactions", json=body)

    async def unreact(self, post_id: str, emoji: str) -> None:
        """Remove a reaction."""
        await self.request("DELETE", f"/users/{self.account.id}/posts/{post_id}/reactions/{emoji}")

    async def upload(self, channel_id: str, name: str, data: bytes) -> FileInfo:
        """Upload a file (multipart, ``channel_id`` first, like the web app)."""
        upload = await self._call(
            _Upload,
            "POST",
            "/files",
            data={"channel_id": channel_id},
            files={"files": (name, data, "application/octet-stream")},
        )
        return upload.file_infos[0]

    async def typing(self, channel_id: str, parent_id: str = "") -> None:
        """Show "is typing…" in the channel."""
        body = {"channel_id": channel_id, "parent_id": parent_id}
        await self.request("POST", f"/users/{self.account.id}/typing", json=body)
