"""Child process of the kill test: saves two large stores in turn until it is killed.

Run as ``python -m tests.mapping_writer PATH``.  It loads PATH (which must hold one of the two
contents, or nothing), saves content A, prints ``ready``, then saves B, A, B, … with fsync on.
The parent kills it with SIGKILL at random moments and checks the file is always A or B, whole.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping, encode_file, iso_timestamp
from mmthreads.mapping_store import MappingStore

COUNT = 8_000
STAMP_A = datetime(2026, 1, 15, 15, 45, tzinfo=UTC)
STAMP_B = datetime(2026, 1, 15, 16, 45, tzinfo=UTC)
_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"


def contents() -> tuple[list[ThreadMapping], list[ThreadMapping]]:
    """Contents A and B: the same sessions; in B each was active an hour later, retitled."""
    rnd = random.Random(7)
    a, b = [], []
    for n in range(COUNT):
        session_id = f"ses_{n:06d}" + "".join(rnd.choices(_ALPHABET, k=20))
        mapping = ThreadMapping(
            session_id=session_id,
            thread_root_post_id="".join(rnd.choices(_ALPHABET, k=26)),
            short_id=session_id[:8],
            mattermost_user_id="u" * 26,
            dm_channel_id="c" * 26,
            project_name="billing-service",
            directory="/home/dev/src/github.com/acme-corp/billing-service",
            session_title=f"Session number {n}",
            status=ThreadState.ACTIVE,
            created_at=iso_timestamp(STAMP_A.timestamp() - 3600 - n),
            last_activity_at=iso_timestamp(STAMP_A.timestamp() - n),
        )
        a.append(mapping)
        b.append(
            ThreadMapping(
                **{
                    **{f: getattr(mapping, f) for f in mapping.__struct_fields__},
                    "session_title": f"Renamed session {n}",
                    "last_activity_at": iso_timestamp(STAMP_B.timestamp() - n),
                }
            )
        )
    return a, b


def expected_files() -> tuple[bytes, bytes]:
    """The exact bytes of files A and B."""
    a, b = contents()
    return encode_file(a, iso_timestamp(STAMP_A)), encode_file(b, iso_timestamp(STAMP_B))


def main(path: Path) -> None:
    """Save A and B in turn, forever."""
    a, b = contents()
    store = MappingStore(path)
    store.load()
    store.save(a, STAMP_A)
    print("ready", flush=True)
    while True:
        store.save(b, STAMP_B)
        store.save(a, STAMP_A)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
