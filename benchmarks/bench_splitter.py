"""Splitter benchmark: 100 KB and 1 MB of agent-style markdown at Mattermost's 16383-rune limit.

Run it as ``python -m benchmarks.bench_splitter``; a combined runner calls ``run()``. The text is
generated from a fixed seed and looks like what a coding agent writes: headings, prose with
inline code, lists, and many fenced code blocks with languages (``python``, ``ts``, ``bash``,
``json``, ``diff``), some with tildes, some four-backtick fences that quote a three-backtick
block, and tool output.

For each size: the best time of several runs, the number of parts, and how many parts end inside
an open code fence (must be 0). The baseline is a naive splitter that cuts at the last newline
before the limit and knows nothing about fences; the same count for it shows what the fence
handling buys. Fences are counted by a small line scanner written here, independent of the
splitter's own.
"""

from __future__ import annotations

import random
import re
import timeit
from functools import partial

from benchmarks.table import format_table
from mmthreads.core.splitter import split_message

LIMIT = 16383
SIZES = (("100 KB", 100_000), ("1 MB", 1_000_000))
RUNS = 5

Row = tuple[str, str]

_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_WORDS = (
    "the session retries the upload after a timeout and logs the response body so we can see "
    "which field the server rejected before the mapping file is written atomically again"
).split()
_CODE = {
    "python": [
        "def handle(event):",
        "    if event.kind == 'posted':",
        "        return route(event)",
    ],
    "ts": ["export async function send(post: Post) {", "  await client.createPost(post);", "}"],
    "bash": ["set -euo pipefail", "npm ci && npm test -- --runInBand", "echo done"],
    "json": ['{"version": 1,', ' "mappings": [],', ' "lastModified": "2026-01-15T15:45:00Z"}'],
    "diff": ["--- a/src/app.py", "+++ b/src/app.py", "@@ -1,3 +1,4 @@", "+import logging"],
}


def generate(size: int, seed: int = 1) -> str:
    """Agent-style markdown of at least ``size`` code points, built from whole blocks."""
    rng = random.Random(seed)
    blocks: list[str] = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.15:
            block = f"## Step {len(blocks)}: {' '.join(rng.choices(_WORDS, k=4))}"
        elif kind < 0.45:
            words = rng.choices(_WORDS, k=rng.randint(20, 90))
            words[rng.randrange(len(words))] = "`route()`"
            block = " ".join(words) + "."
        elif kind < 0.55:
            block = "\n".join(f"- {' '.join(rng.choices(_WORDS, k=6))}" for _ in range(4))
        elif kind < 0.62:
            inner = "\n".join(_CODE["python"])
            block = f"````markdown\nExample:\n```python\n{inner}\n```\n````"
        else:
            language = rng.choice(list(_CODE))
            lines = _CODE[language] * rng.randint(1, 40)
            fence = "~~~" if rng.random() < 0.1 else "```"
            block = f"{fence}{language}\n" + "\n".join(lines) + f"\n{fence}"
        blocks.append(block)
        total += len(block) + 2
    return "\n\n".join(blocks) + "\n"


def scan_fences(text: str) -> tuple[int, bool]:
    """Count the fenced code blocks of ``text`` and tell whether it ends inside one."""
    char, length, blocks = "", 0, 0
    for line in text.split("\n"):
        match = _FENCE.fullmatch(line)
        if not length:
            if match and not (match[2][0] == "`" and "`" in match[3]):
                char, length, blocks = match[2][0], len(match[2]), blocks + 1
        elif match and match[2][0] == char and len(match[2]) >= length and not match[3].strip():
            length = 0
    return blocks, length > 0


def ends_inside_fence(part: str) -> bool:
    """Whether a part, read on its own, ends inside an open fenced code block."""
    return scan_fences(part)[1]


def naive_split(text: str, limit: int) -> list[str]:
    """The baseline: cut at the last newline before the limit (else hard), no fence handling."""
    parts = []
    start = 0
    while len(text) - start > limit:
        cut = text.rfind("\n", start, start + limit) + 1
        if cut <= start:
            cut = start + limit
        parts.append(text[start:cut])
        start = cut
    parts.append(text[start:])
    return parts


def run() -> list[Row]:
    """Split each size with the splitter and the baseline; return (label, figure) rows."""
    rows: list[Row] = []
    for label, size in SIZES:
        text = generate(size)
        blocks = scan_fences(text)[0]
        seconds = min(timeit.repeat(partial(split_message, text, LIMIT), number=1, repeat=RUNS))
        parts = split_message(text, LIMIT)
        broken = sum(ends_inside_fence(part) for part in parts)
        naive = naive_split(text, LIMIT)
        naive_broken = sum(ends_inside_fence(part) for part in naive)
        rows += [
            (f"{label}: text", f"{len(text):,} runes, {blocks:,} code blocks"),
            (f"{label}: split time", f"{seconds * 1e3:.1f} ms"),
            (f"{label}: parts", f"{len(parts)} (largest {max(map(len, parts)):,} runes)"),
            (f"{label}: parts ending inside a fence", f"{broken} of {len(parts)}"),
            (
                f"{label}: naive baseline, parts ending inside a fence",
                f"{naive_broken} of {len(naive)}",
            ),
        ]
    return rows


if __name__ == "__main__":
    print(format_table(run()))
