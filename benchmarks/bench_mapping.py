"""Mapping store benchmark: load, save, lookups and memory for 1k / 10k / 100k mappings.

Run it as ``python -m benchmarks.bench_mapping``; a combined runner calls ``run()``.  The data
is realistic: ``ses_`` + 26 characters session ids, 26-character Mattermost ids from Mattermost's
alphabet, three users with one DM channel each, eight projects in ~45-character directories, titles
from a small vocabulary, ``toISOString()`` timestamps and a mix of statuses.

How it measures, on a shared machine where other processes come and go:

* Every time is the minimum of several runs, taken with ``time.perf_counter_ns``: the run the
  other processes disturbed least.  The median is shown next to it, to show the noise.
* The collector is disabled in the timed sections.  Production sees the same: a 100k load or
  save allocates no gc-tracked objects worth a collection (``gc.callbacks`` records none), so
  disabling it only keeps the benchmark's own garbage from landing inside a timed run.
* The load average is printed at the start and the end; above the number of CPUs, expect every
  figure to be inflated.
* "save" is the whole ``MappingStore.save`` (nothing to merge) with fsync off; the fsync row is
  the extra cost of the same save with fsync on (best against best).
* "floor" rows time one unavoidable step alone, to show how much of a total it is.
* Lookups use fresh copies of the keys, as decoded from an incoming event.  "random" cycles
  through 10k of the 100k sessions, so its data comes from the CPU's last-level cache rather
  than RAM; "cold" takes a different 10k sample in each run; "hot" repeats 100 keys.
* Memory is measured in a fresh child process: the RSS delta (``/proc/self/status``) and the
  tracemalloc delta of a load whose index is kept, then again once ``for_user`` has built the
  per-user index (which the index builds on first use).
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from benchmarks.table import format_table
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping, encode_file, iso_timestamp
from mmthreads.mapping_index import MappingIndex
from mmthreads.mapping_store import MappingStore

if TYPE_CHECKING:
    from collections.abc import Callable

MM_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
SESSION_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PROJECTS = (
    "business-automation",
    "customer-portal",
    "billing-service",
    "infra-terraform",
    "mobile-app",
    "data-pipeline",
    "docs-site",
    "opencode-mattermost",
)
VERBS = ("Fix", "Refactor", "Add tests for", "Investigate", "Speed up", "Document", "Remove")
OBJECTS = (
    "email pipeline",
    "login flow",
    "upload retries",
    "flaky CI job",
    "invoice export",
    "webhook handler",
    "settings page",
    "search indexing",
    "rate limiter",
    "migration script",
)
STATUSES = (ThreadState.ENDED, ThreadState.ACTIVE, ThreadState.ORPHANED, ThreadState.DISCONNECTED)
STATUS_WEIGHTS = (70, 15, 10, 5)
SIZES = (1_000, 10_000, 100_000)
# label -> (limit, unit) for the 100k figures
TARGETS = {
    "load": (85.0, "ms"),
    "save": (45.0, "ms"),
    "lookup": (300.0, "ns"),
    "memory": (60.0, "MB"),
}
NOW = datetime(2026, 1, 15, 15, 45, tzinfo=UTC)
#: Timed runs per figure: (100k, smaller sizes).
RUNS = (9, 15)
LOOKUP_RUNS = 50

Row = tuple[str, str, str]

__all__ = ["format_table", "make_mappings", "run"]


def make_mappings(count: int, seed: int = 0, *, unique_titles: bool = False) -> list[ThreadMapping]:
    """``count`` realistic mappings, the same for the same seed.

    Args:
        count: How many.
        seed: For ``random.Random``.
        unique_titles: Give every session its own title (as generated titles would be) instead
            of drawing from the small vocabulary.
    """
    rnd = random.Random(seed)

    def mm_id() -> str:
        return "".join(rnd.choices(MM_ALPHABET, k=26))

    users = [(mm_id(), mm_id(), name) for name in ("alice", "bob", "carol")]
    start = NOW - timedelta(days=90)
    out = []
    for n in range(count):
        user_id, channel_id, login = rnd.choice(users)
        project = rnd.choice(PROJECTS)
        session_id = "ses_" + "".join(rnd.choices(SESSION_ALPHABET, k=26))
        created = start + timedelta(milliseconds=rnd.randrange(90 * 86_400_000))
        last = created + timedelta(milliseconds=rnd.randrange(3 * 86_400_000))
        status = rnd.choices(STATUSES, STATUS_WEIGHTS)[0]
        title = f"{rnd.choice(VERBS)} {rnd.choice(OBJECTS)}"
        out.append(
            ThreadMapping(
                session_id=session_id,
                thread_root_post_id=mm_id(),
                short_id=session_id[:8],
                mattermost_user_id=user_id,
                dm_channel_id=channel_id,
                project_name=project,
                directory=f"/home/{login}/src/github.com/acme-corp/{project}",
                session_title=(f"{title} #{n}" if unique_titles else title)
                if rnd.random() < 0.9
                else None,
                status=status,
                created_at=iso_timestamp(created),
                last_activity_at=iso_timestamp(last),
                ended_at=iso_timestamp(last) if status is ThreadState.ENDED else None,
            )
        )
    return out


def _times_ns(fn: Callable[[], object], runs: int) -> list[int]:
    """Nanoseconds of ``runs`` calls, collector off; each result is freed outside the timing."""
    times = []
    for _ in range(runs):
        gc.disable()
        try:
            start = time.perf_counter_ns()
            result = fn()
            times.append(time.perf_counter_ns() - start)
        finally:
            gc.enable()
        del result
    return times


def _ms(times: list[int]) -> tuple[float, str]:
    """The best time in ms, and a figure showing it with the median."""
    best = min(times) / 1e6
    return best, f"{best:.1f} ms (median {statistics.median(times) / 1e6:.1f})"


def _verdict(kind: str, value: float) -> str:
    limit, unit = TARGETS[kind]
    return f"≤ {limit:g} {unit} {'met' if value <= limit else 'MISSED'}"


def _load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} ({os.cpu_count()} CPUs)"


def _per_lookup_ns(method: Callable[[str], object], keys: list[str], runs: int) -> float:
    def loop() -> None:
        for key in keys:
            method(key)

    return min(_times_ns(loop, runs)) / len(keys)


def _lookup_rows(index: MappingIndex, mappings: list[ThreadMapping]) -> list[Row]:
    rnd = random.Random(1)
    sample = rnd.sample(mappings, min(len(mappings), 10_000))
    cold_samples = [rnd.sample(mappings, len(sample)) for _ in range(10)]
    index.for_user(sample[0].mattermost_user_id)  # builds the per-user index: not timed here
    rows = []
    for label, method, field in (
        ("get(session_id)", index.get, "session_id"),
        ("by_thread_root(post_id)", index.by_thread_root, "thread_root_post_id"),
        ("for_user(user_id)", index.for_user, "mattermost_user_id"),
    ):

        def keys_of(ms: list[ThreadMapping], field: str = field) -> list[str]:
            return [getattr(m, field).encode().decode() for m in ms]

        keys = keys_of(sample)
        random_ns = _per_lookup_ns(method, keys, LOOKUP_RUNS)
        cold_ns = min(_per_lookup_ns(method, keys_of(ms), 1) for ms in cold_samples)
        hot_ns = _per_lookup_ns(method, keys[:100] * 100, LOOKUP_RUNS)
        figure = f"{random_ns:.0f} ns (cold {cold_ns:.0f}, hot {hot_ns:.0f})"
        rows.append((f"lookup {label}, random of 100k", figure, _verdict("lookup", random_ns)))
    return rows


def _memory(path: Path) -> tuple[float, float, float, float, float]:
    """Run ``_measure_memory`` in a fresh child process; its five figures (MB)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_mapping", "--memory", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    rss, traced, peak, rss_users, traced_users = (float(x) for x in out)
    return rss, traced, peak, rss_users, traced_users


def _measure_memory(path: Path) -> None:
    """Child process: print the RSS and traced deltas of one load, its traced peak, and both
    deltas once the per-user index is built too (MB)."""

    def rss() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    gc.collect()
    before = rss()
    kept = MappingStore(path).load()
    gc.collect()
    rss_delta = rss() - before
    first = next(iter(kept.index))
    kept.index.for_user(first.mattermost_user_id)
    gc.collect()
    rss_users = rss() - before
    del kept, first
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = MappingStore(path).load()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    kept.index.for_user(next(iter(kept.index)).mattermost_user_id)
    traced_users = tracemalloc.get_traced_memory()[0] - base
    print(
        f"{rss_delta:.2f} {(current - base) / 1e6:.2f} {(peak - base) / 1e6:.2f} "
        f"{rss_users:.2f} {traced_users / 1e6:.2f}"
    )
    assert len(kept.index) > 0


def _floor_rows(path: Path, mappings: list[ThreadMapping], runs: int) -> list[Row]:
    """What the steps nothing can skip cost alone, at 100k."""
    whole = msgspec.json.Decoder(list[ThreadMapping])
    data = path.read_bytes()
    array = memoryview(data)[data.index(b"[") : data.rindex(b"]") + 1]

    def read() -> int:
        with open(path, "rb", buffering=0) as src:
            buf = bytearray(1 << 18)
            with memoryview(buf) as view:
                while src.readinto(view):
                    pass
        return 0

    encoder = msgspec.json.Encoder(order="deterministic")
    compact = encoder.encode(mappings)
    pretty = encode_file(mappings, iso_timestamp(NOW))
    target = path.with_name("floor.tmp")

    def write() -> None:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(pretty)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    rows = [
        ("floor: read the 100k file", _ms(_times_ns(read, runs))[1], ""),
        (
            "floor: msgspec decode of its entries, alone",
            _ms(_times_ns(lambda: whole.decode(array), runs))[1],
            "",
        ),
        (
            "floor: msgspec encode of 100k, compact",
            _ms(_times_ns(lambda: encoder.encode(mappings), runs))[1],
            "",
        ),
        (
            "floor: msgspec.json.format of that",
            _ms(_times_ns(lambda: msgspec.json.format(compact, indent=2), runs))[1],
            "",
        ),
        ("floor: write the 100k file (57 MB)", _ms(_times_ns(write, runs))[1], ""),
    ]
    target.unlink()
    return rows


def _first_for_user_ms(mappings: list[ThreadMapping], runs: int) -> str:
    """The first ``for_user`` of a fresh 100k index, which builds the per-user index."""
    times = []
    for _ in range(runs):
        index, _ = MappingIndex.build(mappings)
        user = mappings[0].mattermost_user_id
        times += _times_ns(lambda: index.for_user(user), 1)  # noqa: B023 - called right here
    return _ms(times)[1]


def _size_rows(tmp: Path, count: int) -> list[Row]:
    big = count == 100_000
    runs = RUNS[0] if big else RUNS[1]
    label = f"{count // 1000}k"
    path = tmp / label / "mattermost-threads.json"
    mappings = make_mappings(count)
    MappingStore(path, fsync=False).save(mappings, NOW)
    rows = [(f"file size, {label}", f"{path.stat().st_size / 1e6:.2f} MB", "")]

    load, figure = _ms(_times_ns(lambda: MappingStore(path).load(), runs))
    rows.append((f"load, {label}", figure, _verdict("load", load) if big else ""))

    store = MappingStore(path, fsync=False)
    index = store.load().index
    save, figure = _ms(_times_ns(lambda: store.save(index, NOW), runs))
    rows.append((f"save without fsync, {label}", figure, _verdict("save", save) if big else ""))
    synced = MappingStore(path, fsync=True)
    synced.load()
    with_fsync = min(_times_ns(lambda: synced.save(index, NOW), max(3, runs // 2))) / 1e6
    rows.append((f"fsync cost (file + directory), {label}", f"{with_fsync - save:.1f} ms", ""))
    if not big:
        return rows

    rows.append(
        (
            "per-user index, built by the first for_user, 100k",
            _first_for_user_ms(mappings, runs),
            "",
        )
    )
    rows.extend(_lookup_rows(index, mappings))
    rss, traced, peak, rss_users, traced_users = _memory(path)
    rows += [
        ("memory added by 100k loaded, RSS delta", f"{rss:.1f} MB", _verdict("memory", rss)),
        (
            "memory added by 100k loaded, tracemalloc",
            f"{traced:.1f} MB",
            _verdict("memory", traced),
        ),
        ("memory peak during the 100k load, tracemalloc", f"{peak:.1f} MB", ""),
        (
            "memory with the per-user index built too, 100k",
            f"RSS {rss_users:.1f} MB, tracemalloc {traced_users:.1f} MB",
            "",
        ),
    ]
    unique = path.with_name("unique-titles.json")
    MappingStore(unique, fsync=False).save(make_mappings(count, unique_titles=True), NOW)
    rss, traced, *_ = _memory(unique)
    rows.append(
        (
            "memory added by 100k loaded, every title unique",
            f"RSS {rss:.1f} MB, tracemalloc {traced:.1f} MB",
            "",
        )
    )
    rows.extend(_floor_rows(path, mappings, runs))
    return rows


def run() -> list[Row]:
    """Run the benchmark; rows of (what, figure, target and verdict)."""
    rows: list[Row] = [("load average (1/5/15 min) at the start", _load_average(), "")]
    with tempfile.TemporaryDirectory() as tmp:
        for count in SIZES:
            rows.extend(_size_rows(Path(tmp), count))
    rows.append(("load average (1/5/15 min) at the end", _load_average(), ""))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        _measure_memory(Path(sys.argv[2]))
    else:
        print(format_table(run()))
