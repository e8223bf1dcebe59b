"""Split a long message into numbered posts without breaking code fences.

Mattermost refuses (never truncates) a post longer than its limit, 16383 runes on any modern
server, counted as Unicode code points, which is exactly Python's ``len`` of a ``str``.
:func:`split_message` cuts a longer text into parts, each at most ``limit`` code points
*including* everything the splitter adds.

Theory of operation
-------------------
Each part is ``reopen + text[start:end] + close + marker``:

* the bodies ``text[start:end]`` are consecutive slices: removing the additions and joining the
  parts gives back the original text exactly;
* ``marker`` is ``"\\n\\n(k/n)"``, a paragraph of its own at the end of every part;
* if a fenced code block is open at the cut, ``close`` ends it in this part (a newline first when
  the cut is mid-line) and the next part starts with ``reopen``: the opening fence line again,
  with the same fence string and info string (language). So no part ends inside a fence, the
  marker never lands inside code, and code keeps its highlighting in every part.

Cuts are chosen, in this order, as late as the limit allows: at a blank line or just before or
after a code block (only if that keeps at least half of the part's room); at a line end (same
proviso); inside a long line, after its last space or else anywhere; at any earlier line end;
inside the leading run of a fence-like line; finally anywhere in the window. A cut inside a
line is never placed where the text after it would start a fence line of its own (3+ backticks
or tildes after 0-3 spaces), nor where the head of a fence-like line would read differently
once cut off, so cutting never opens, closes or hides a fence.

Fences are tracked as CommonMark defines them at the top level: 3+ backticks or tildes after at
most 3 spaces of indentation, closed by a line of the same character, at least as long, with
nothing but spaces or tabs after; a backtick fence's info string contains no backtick; an
unclosed fence runs to the end of the text. Fences nested in block quotes or in list items
indented 4+ columns are not tracked (they are rare in agent output).

Limits
------
:data:`MIN_LIMIT` (64) is the smallest limit accepted once a split is needed: it leaves room
for the largest marker, a reopened and closed fence, and some text. The reopen line is
shortened when needed so that reopen and close together take at most half the room of a part:
first the info string is cut to its first word (the language), then dropped, and last the fence
is shortened to the shortest one no line inside the block can close. Only two kinds of input
cannot be kept intact: a fence that does not fit even in its shortest form (a run of backticks
or tildes longer than about a quarter of the limit), and a line longer than a whole part that
starts with five or more backticks or tildes and offers no safe cut inside the part. The part
limit and the lossless slices hold for every input. Cuts count code points, so a combining mark
or an emoji sequence (ZWJ, flags) can be separated from its base when a line is cut inside.

Cost is linear in the text: one regex pass finds the fence lines, and each cut looks only at
its own window.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

import msgspec

__all__ = ["MIN_LIMIT", "SplitPart", "plan_split", "split_message"]

#: The smallest ``limit`` accepted when a text has to be split.
MIN_LIMIT: Final = 64

# A line that opens, closes, or could be mistaken for a fence: 0-3 spaces, then a run of 3+
# backticks or tildes, then the rest of the line (the info string or trailing blanks).
_FENCE_LINE: Final = re.compile(r"^( {0,3})(`{3,}|~{3,})([^\n]*)", re.MULTILINE)
# What a part must not start with after a cut inside a line.
_FENCE_START: Final = re.compile(r" {0,3}(?:```|~~~)")
_BLANKS: Final = " \t\r"


class SplitPart(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a split message, described against the original text.

    Attributes:
        start: Index of the first character of this part's slice of the text.
        end: Index just past its last character.
        reopen: Fence line (with its newline) added before the slice, or "".
        close: Closing fence (with a leading newline when needed) added after it, or "".
        marker: The ``"\\n\\n(k/n)"`` numbering, or "" when the text was not split.
    """

    start: int
    end: int
    reopen: str = ""
    close: str = ""
    marker: str = ""

    def render(self, text: str) -> str:
        """The part as posted: reopen, the slice of ``text``, close and marker."""
        return f"{self.reopen}{text[self.start : self.end]}{self.close}{self.marker}"


class _Block:
    """A fenced code block found in the text (mutable only while scanning)."""

    __slots__ = ("char", "end", "fence", "indent", "line_end", "open_to", "short", "start")

    def __init__(self, start: int, indent: int, char: str, fence: int, line_end: int) -> None:
        self.start = start  # index of the opening line
        self.indent = indent
        self.char = char
        self.fence = fence
        self.line_end = line_end  # index of the opening line's end (its newline)
        self.open_to = -1  # index of the closing line (the text's length if unclosed)
        self.end = -1  # index just past the closing line
        self.short = 3  # shortest fence that no line inside the block closes


class _Scan:
    """Where the fences are: the blocks, and the cut floors of fence-like lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.blocks: list[_Block] = []
        # line start -> first index a cut inside that line may use when the part contains the
        # line's start; before it, the cut-off head would read as a different fence line.
        self.floor: dict[int, int] = {}
        self.budget = 0
        self._reopens: dict[int, tuple[str, int] | None] = {}
        floor, blocks = self.floor, self.blocks
        current: _Block | None = None
        # Only fence-like lines can change the state, so the regex visits just those: the cost
        # stays proportional to the number of fence lines, not of all lines.
        for match in _FENCE_LINE.finditer(text):
            start = match.start()
            pad, run, rest = match.groups()
            char, length = run[0], len(run)
            if current is None:
                if char == "`" and "`" in rest:
                    # Not a fence (a backtick info string cannot contain a backtick), unless a
                    # cut drops the backtick that disqualifies it.
                    floor[start] = start + len(pad) + length + rest.index("`") + 1
                    continue
                current = _Block(start, len(pad), char, length, match.end())
                blocks.append(current)
                floor[start] = start + len(pad) + length
            elif char != current.char:
                continue  # the other fence character is plain content here
            elif rest.strip(_BLANKS):
                # Content; a head ending before the first non-blank would be a closing fence.
                blanks = len(rest) - len(rest.lstrip(" \t"))
                floor[start] = start + len(pad) + length + blanks + 1
            elif length >= current.fence:
                current.open_to = start
                current.end = min(len(text), match.end() + 1)
                floor[start] = start + len(pad) + length
                current = None
            elif length >= current.short:
                # A blank-ended run shorter than the fence is content; a reopen fence must be
                # longer than it, or this line would close the reopened block.
                current.short = length + 1
        if current is not None:
            current.open_to = current.end = len(text)
        self.starts = [block.start for block in blocks]
        self.ends = [block.end for block in blocks]

    def block_at(self, pos: int) -> _Block | None:
        """The block a cut at ``pos`` leaves open (its opening fence is before ``pos``)."""
        i = bisect.bisect_left(self.starts, pos) - 1
        if i >= 0 and pos <= self.blocks[i].open_to:
            return self.blocks[i]
        return None

    def set_budget(self, budget: int) -> None:
        """Set how many code points a reopen line and its close may take together."""
        if budget != self.budget:
            self.budget = budget
            self._reopens.clear()

    def reopen(self, block: _Block) -> tuple[str, int] | None:
        """The reopen line (with its newline) and the fence length it opens, or None.

        The longest form that fits the budget: the opening line verbatim; the fence with the
        language only; the bare fence; the shortest fence no line in the block closes.
        """
        if block.start not in self._reopens:
            line = self.text[block.start : block.line_end].rstrip("\r")
            pad = " " * block.indent
            words = line[block.indent + block.fence :].split()
            # A space keeps a language starting with the fence character from lengthening it.
            language = (" " if words and words[0][0] == block.char else "") + (words or [""])[0]
            forms = [
                (line, block.fence),
                (pad + block.char * block.fence + language, block.fence),
                (pad + block.char * block.fence, block.fence),
                (pad + block.char * block.short, block.short),
            ]
            # reopen line + newline, and the close: newline, indentation, fence.
            fitting = [
                (form + "\n", fence)
                for form, fence in forms
                if len(form) + 1 + 1 + block.indent + fence <= self.budget
            ]
            self._reopens[block.start] = fitting[0] if fitting else None
        return self._reopens[block.start]


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into numbered posts of at most ``limit`` code points each.

    Args:
        text: The message, Mattermost markdown.
        limit: The server's post limit in runes (16383 on modern servers).

    Returns:
        ``[text]`` unchanged when it fits; otherwise the parts, each ending with its ``(k/n)``
        marker, code fences closed at the end of a part and reopened at the start of the next.

    Raises:
        ValueError: If the text must be split and ``limit`` is below :data:`MIN_LIMIT`.
    """
    return [part.render(text) for part in plan_split(text, limit)]


def plan_split(text: str, limit: int) -> list[SplitPart]:
    """Plan the split of ``text``: what :func:`split_message` posts, as slices plus additions.

    Args:
        text: The message.
        limit: The post limit in code points.

    Returns:
        One :class:`SplitPart` with no additions when the text fits, otherwise the parts.

    Raises:
        ValueError: If the text must be split and ``limit`` is below :data:`MIN_LIMIT`.
    """
    if len(text) <= limit:
        return [SplitPart(start=0, end=len(text))]
    if limit < MIN_LIMIT:
        raise ValueError(f"limit {limit} is below the minimum of {MIN_LIMIT} for splitting")
    scan = _Scan(text)
    # The marker's width depends on the number of parts, which depends on the room the marker
    # leaves: start from a lower bound on the digits and widen until the count fits.
    digits = len(str(-(-len(text) // limit)))
    # Almost always one pass; a second one only when the count crosses a power of ten.
    while True:
        reserve = len("\n\n(/)") + 2 * digits
        # Half of what is left may go to reopen + close, so every part carries real text.
        scan.set_budget((limit - reserve) // 2)
        cuts = _cut(text, limit - reserve, scan)
        if len(cuts) < 10**digits:
            break
        digits += 1
    total = len(cuts)
    return [
        SplitPart(start=start, end=end, reopen=reopen, close=close, marker=f"\n\n({k}/{total})")
        for k, (start, end, reopen, close) in enumerate(cuts, start=1)
    ]


def _cut(text: str, room: int, scan: _Scan) -> list[tuple[int, int, str, str]]:
    """Greedy cuts: each part takes as much text as ``room`` (limit minus marker) allows."""
    n = len(text)
    cuts: list[tuple[int, int, str, str]] = []
    start = 0
    while start < n:
        inside = scan.block_at(start)
        found = scan.reopen(inside) if inside is not None else None
        reopen, fence = found if found is not None else ("", 0)
        space = room - len(reopen)  # for this part's slice and close

        end = n
        close = _close(text, scan, n, inside, fence)
        if n - start + len(close) > space:
            # The close depends on where the cut falls, so pick a cut for the largest window,
            # then shrink the window by what the close overflows and pick again. The window
            # shrinks every round, so this ends.
            window, end = start + space, -1
            while window > start:
                candidate = _choose(text, start, window, start + space // 2, scan)
                if candidate is None:
                    break
                close = _close(text, scan, candidate, inside, fence)
                overflow = candidate - start + len(close) - space
                if overflow <= 0:
                    end = candidate
                    break
                window = candidate - overflow
            if end < 0:
                end, close = _forced_cut(text, start, space, reopen)
        cuts.append((start, end, reopen, close))
        start = end
    return cuts


def _forced_cut(text: str, start: int, space: int, reopen: str) -> tuple[int, str]:
    """Cut as late as the limit allows when no clean cut exists, closing what the part opened.

    Only lines longer than a part made of fence-like runs (e.g. a line starting with backticks
    whose disqualifying backtick lies beyond the window) get here. The part is re-scanned on its
    own, so a fence it leaves open is still closed when the close fits.
    """
    end = min(len(text), start + space)
    while end > start:
        part = reopen + text[start:end]
        blocks = _Scan(part).blocks
        close = ""
        if blocks and blocks[-1].open_to == len(part):
            block = blocks[-1]
            newline = "" if part.endswith("\n") else "\n"
            close = f"{newline}{' ' * block.indent}{block.char * block.fence}"
        overflow = end - start + len(close) - space
        if overflow <= 0:
            return end, close
        end -= overflow
    return min(len(text), start + space), ""


def _close(text: str, scan: _Scan, pos: int, inside: _Block | None, fence: int) -> str:
    """What closes the fence left open by a cut at ``pos`` in a part that began ``inside``."""
    block = scan.block_at(pos)
    if block is None:
        return ""
    # Reopened at the start of this part, with a fence of length ``fence`` (0 when the block
    # could not be reopened: then it is not open in this part and there is nothing to close);
    # otherwise the block was opened in this part by its own fence line.
    length = fence if block is inside else block.fence
    if not length:
        return ""
    newline = "" if text[pos - 1] == "\n" else "\n"
    return f"{newline}{' ' * block.indent}{block.char * length}"


def _choose(text: str, start: int, window: int, half: int, scan: _Scan) -> int | None:
    """The best cut in ``(start, window]``, by the preference order in the module docstring."""
    half = min(half, window)  # the window shrinks when a close did not fit
    # Block boundaries are the best cuts: nothing to close or reopen, and a paragraph or a
    # whole code block stays in one piece.
    best = -1
    blank = text.rfind("\n\n", start, window)
    if blank >= 0:
        block = scan.block_at(blank + 2)
        # A blank line inside code is no paragraph break: cut before that block instead.
        best = blank + 2 if block is None else block.start
    i = bisect.bisect_right(scan.ends, window) - 1
    if i >= 0:
        best = max(best, scan.ends[i])
    i = bisect.bisect_right(scan.starts, window) - 1
    if i >= 0:
        best = max(best, scan.starts[i])
    if best > half:
        return best
    line = text.rfind("\n", start, window) + 1
    if line > half:
        return line
    # A line end in the first half would leave a short part while the next one still starts
    # with the long line; cutting inside that line first keeps the parts full.
    # No line end in the second half: the window's tail is inside one line.
    cut = _cut_in_line(text, max(half, line), window, start, scan)
    if cut is not None:
        return cut
    if line > start:
        return line
    return _cut_in_line(text, start, half, start, scan)


def _cut_in_line(text: str, low: int, high: int, start: int, scan: _Scan) -> int | None:
    """A safe cut in ``(low, high]``, all inside one line; after a space if possible."""
    # Only the line's own start matters, and only if this part contains it; searching from
    # just before the part keeps the cost within the window.
    newline = text.rfind("\n", max(start - 1, 0), high)
    line_start = newline + 1
    floor = scan.floor.get(line_start, 0) if newline >= 0 or start == 0 else 0
    if floor > high:
        # Wherever the head ends in the window it would read as a fence line. Splitting the
        # leading run itself leaves fewer than three fence characters on either side.
        run = _FENCE_LINE.match(text, line_start)
        if run is not None and len(run[2]) <= 4:
            cut = line_start + len(run[1]) + len(run[2]) - 2
            if low < cut <= high:
                return cut
        return None
    low = max(low, floor - 1, start)
    # After a space, words stay whole; the space ends this part rather than starting the next.
    space = text.rfind(" ", low, high)
    if space >= 0 and not _FENCE_START.match(text, space + 1):
        return space + 1
    # Positions fail only inside runs of fence characters, so this walk is short in practice
    # and bounded by the window in the worst case.
    for cut in range(high, low, -1):
        if not _FENCE_START.match(text, cut):
            return cut
    return None
