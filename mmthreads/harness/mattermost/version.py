"""The server version the emulator claims (``X-Version-Id``, ``hello``, ``ping``)."""

from __future__ import annotations

from typing import Final

__all__ = ["BUILD_NUMBER", "CONFIG_HASH", "SERVER_VERSION", "VERSION", "VERSION_ID"]

#: ``model.CurrentVersion`` of the server the emulator imitates.
VERSION: Final = "9.11.0"
BUILD_NUMBER: Final = "9.11.0"
CONFIG_HASH: Final = "6d6d746872656164732d656d756c61746f72"
#: ``<version>.<build>.<confighash>.<licensed>``, as in ``X-Version-Id`` and ``hello``.
SERVER_VERSION: Final = f"{VERSION}.{BUILD_NUMBER}.{CONFIG_HASH}.false"
VERSION_ID: Final = SERVER_VERSION
