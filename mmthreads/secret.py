"""A credential held so that it cannot leak through ``repr``, ``str``, logs or error messages."""

from __future__ import annotations

import hmac

__all__ = ["Secret"]


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` print asterisks.

    Settings, and anything that holds a token or a password, keep it in a ``Secret``: printing the
    settings, logging them or formatting them into an exception shows ``**********``. Only
    :meth:`reveal` returns the value, at the one place that sends it.

    Args:
        value: The secret; "" means not set (and ``bool(secret)`` is then False).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the request that needs it (an HTTP header)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, as for any comparison of credentials.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))
