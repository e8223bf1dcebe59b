"""Mattermost's ``AppError``: the JSON error body every API handler answers with.

``{"id", "message", "detailed_error", "request_id", "status_code"}`` (``model/utils.go``).  The
messages are the English translations from the server's ``i18n/en.json`` for the ids the emulator
can produce.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["MESSAGES", "AppError", "AppErrorBody"]

#: English messages (``i18n/en.json``) for the ids the emulator uses; ``{name}`` is filled in.
MESSAGES: Final[dict[str, str]] = {
    "api.context.404.app_error": "Sorry, we could not find the page.",
    "api.context.invalid_body_param.app_error": "Invalid or missing {name} in request body.",
    "api.context.invalid_param.app_error": "Invalid {name} parameter.",
    "api.context.invalid_url_param.app_error": (
        "Invalid or missing {name} parameter in request URL."
    ),
    "api.context.permissions.app_error": "You do not have the appropriate permissions.",
    "api.context.request_body_too_large.app_error": (
        "Unable to process request. Request body too large."
    ),
    "api.context.session_expired.app_error": "Invalid or expired session, please login again.",
    "api.context.token_provided.app_error": (
        "Session is not OAuth but token was provided in the query string."
    ),
    "api.config.client.old_format.app_error": (
        "New format for the client configuration is not supported yet. Please specify"
        " format=old in the query string."
    ),
    "api.file.upload_file.read_request.app_error": "Unable to read the request.",
    "api.file.upload_file.too_large_detailed.app_error": (
        "Unable to upload file {name}. The file exceeds the maximum allowed size."
    ),
    "api.post.create_post.channel_root_id.app_error": "Invalid ChannelId for RootId parameter.",
    "api.post.create_post.root_id.app_error": "Invalid RootId parameter.",
    "api.post.delete_post.not_enabled.app_error": (
        "Cannot delete post, permanent deletion is not enabled."
    ),
    "api.reaction.save_reaction.invalid.app_error": "Reaction is not valid.",
    "api.reaction.save_reaction.user_id.app_error": "You cannot save reaction for the other user.",
    "api.web_socket_router.bad_action.app_error": "Unknown WebSocket action.",
    "api.web_socket_router.bad_seq.app_error": "Invalid sequence for WebSocket message.",
    "api.web_socket_router.no_action.app_error": "No websocket action.",
    "api.web_socket_router.not_authenticated.app_error": (
        "Connection is not authenticated. Please log in and try again."
    ),
    "app.channel.get.existing.app_error": "Unable to find the existing channel {name}.",
    "app.emoji.get_by_name.no_result": "Unable to find the emoji.",
    "app.file_info.get.app_error": "Unable to get the file info.",
    "app.post.get.app_error": "Unable to get the post.",
    "app.reaction.save.save.too_many_reactions": "Reaction limit has been reached for this post.",
    "app.user.missing_account.const": "Unable to find the user.",
    "model.post.is_valid.file_ids.app_error": (
        "Invalid file ids. Note that uploads are limited to 10 files maximum. Please use"
        " additional posts for more files."
    ),
    "model.post.is_valid.message_length.app_error": (
        "Post Message property is longer than the maximum permitted length."
    ),
    "model.post.is_valid.props.app_error": "Invalid props.",
    "model.post.is_valid.type.app_error": "Invalid type.",
    "model.reaction.is_valid.emoji_name.app_error": "Invalid emoji name.",
}


class AppErrorBody(msgspec.Struct, kw_only=True):
    """The wire shape of an error (field order as the server writes it)."""

    id: str
    message: str
    detailed_error: str = ""
    request_id: str = ""
    status_code: int


class AppError(Exception):
    """An API error: raised by the emulator's state and rendered as ``AppErrorBody``.

    Args:
        error_id: The i18n id, e.g. ``app.post.get.app_error``.
        status: The HTTP status.
        name: Fills ``{name}`` in the message (the parameter name for ``invalid_param``).
    """

    def __init__(self, error_id: str, status: int, name: str = "") -> None:
        self.id = error_id
        self.status = status
        self.message = MESSAGES.get(error_id, error_id).format(name=name)
        super().__init__(f"{status} {error_id}")

    def __repr__(self) -> str:
        return f"AppError({self.id!r}, {self.status})"

    def body(self, request_id: str) -> AppErrorBody:
        """The JSON body for this error, tagged with the request's id."""
        return AppErrorBody(
            id=self.id, message=self.message, request_id=request_id, status_code=self.status
        )

    @classmethod
    def invalid_param(cls, name: str) -> AppError:
        """400 ``api.context.invalid_param.app_error`` for parameter ``name``."""
        return cls("api.context.invalid_param.app_error", 400, name)

    @classmethod
    def invalid_url_param(cls, name: str) -> AppError:
        """400 ``api.context.invalid_url_param.app_error`` for parameter ``name``."""
        return cls("api.context.invalid_url_param.app_error", 400, name)

    @classmethod
    def forbidden(cls) -> AppError:
        """403 ``api.context.permissions.app_error``."""
        return cls("api.context.permissions.app_error", 403)

    @classmethod
    def unauthorized(cls) -> AppError:
        """401 ``api.context.session_expired.app_error``."""
        return cls("api.context.session_expired.app_error", 401)

    @classmethod
    def post_not_found(cls) -> AppError:
        """404 ``app.post.get.app_error``."""
        return cls("app.post.get.app_error", 404)
