"""Sample data shared by the tests: the spec's example mapping."""

from __future__ import annotations

from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping

#: The one mapping of the spec's example file ("Persistence: the mapping file").
SPEC_MAPPING = ThreadMapping(
    session_id="ses_a1b2c3d4e5f6g7h8i9j0k1l2m3",
    thread_root_post_id="x1y2z3a4b5c6d7e8f9g0h1i2j3",
    short_id="ses_a1b2",
    mattermost_user_id="abc123def456ghi789jkl012mn",
    dm_channel_id="ghi789jkl012mno345pqr678st",
    project_name="business-automation",
    directory="/home/dev/business-automation",
    session_title="Fix email pipeline",
    status=ThreadState.ACTIVE,
    created_at="2026-01-15T14:30:00.000Z",
    last_activity_at="2026-01-15T15:45:00.000Z",
)
