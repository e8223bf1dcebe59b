"""A DM-thread bot flow driven by ``mattermostdriver`` (the community Python driver).

Runs under ``.venv-mm/bin/python`` (scripts/install-mm-clients.sh), never under the project venv:

    .venv-mm/bin/python tests/fidelity/driver_flow.py [--challenge] URL BOT_TOKEN HUMAN_ID \
        HUMAN_TOKEN

(or the environment variables MM_URL, MM_BOT_TOKEN, MM_HUMAN_ID, MM_HUMAN_TOKEN).  By default
the WebSocket upgrade carries the token (``websocket_kw_args``) as well as the driver's own
``authentication_challenge``; with ``--challenge`` the challenge is the only authentication.

Prints one JSON line per check on stdout, ``{"check": name, "ok": bool, "detail": ...}``, then a
``created`` line with the ids of everything it made; exits 1 if any check failed, 2 on a crash or
on the overall time limit.  The driver is imported with importlib so that the project's type
check, which runs without it, still sees a well-typed module.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

OVERALL_TIMEOUT_S = float(os.environ.get("MM_FLOW_TIMEOUT_S", "20"))
EVENT_TIMEOUT_S = 5.0
ID_RE = re.compile(r"^[a-z0-9]{26}$")

_failures = 0
_out_lock = threading.Lock()


def report(check: str, ok: bool, detail: Any = None) -> bool:
    global _failures
    with _out_lock:
        if not ok:
            _failures += 1
        line = json.dumps({"check": check, "ok": bool(ok), "detail": detail}, default=repr)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return bool(ok)


def step(check: str, fn: Callable[[], tuple[bool, Any]]) -> bool:
    """Runs one REST step; ``fn`` returns (ok, detail); an exception is a failed check."""
    try:
        ok, detail = fn()
    except Exception as exc:  # every failure becomes a reported check
        return report(check, False, {"error": f"{type(exc).__name__}: {exc}"})
    return report(check, ok, detail)


class Frames:
    """Every frame the driver hands to its event handler, with waiting by predicate."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.frames: list[dict[str, Any]] = []
        self.raw_types: set[str] = set()

    async def handler(self, message: Any) -> None:
        self.raw_types.add(type(message).__name__)
        frame = json.loads(message)
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def events(self) -> list[dict[str, Any]]:
        with self.cond:
            return [f for f in self.frames if "event" in f]

    def wait(self, pick: Callable[[dict[str, Any]], Any], timeout: float = EVENT_TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for frame in self.frames[seen:]:
                    found = pick(frame)
                    if found is not None:
                        return found
                seen = len(self.frames)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def _inner(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def event_with(
    name: str, field: str, match: Callable[[dict[str, Any]], bool]
) -> Callable[[dict[str, Any]], Any]:
    """Picks an event by name whose double-encoded ``field`` (post/reaction) satisfies ``match``."""

    def pick(frame: dict[str, Any]) -> Any:
        if frame.get("event") != name or not isinstance(frame.get("data"), dict):
            return None
        inner = _inner(frame["data"].get(field))
        if isinstance(inner, dict) and match(inner):
            return frame, inner
        return None

    return pick


def sorted_by_create_at(post_list: dict[str, Any]) -> list[str]:
    posts = post_list.get("posts") or {}
    found = [posts[i] for i in post_list.get("order", []) if i in posts]
    found.sort(key=lambda p: (p["create_at"], p["id"]))
    return [p["id"] for p in found]


def run(url: str, bot_token: str, human_id: str, human_token: str, *, challenge: bool) -> None:
    driver_cls = importlib.import_module("mattermostdriver").Driver
    parts = urlsplit(url)

    def make_driver(token: str) -> Any:
        options: dict[str, Any] = {
            "url": parts.hostname,
            "port": parts.port,
            "scheme": "http",
            "token": token,
            # The socket loop wakes up this often, so disconnect() takes effect quickly.
            "timeout": 1,
            "request_timeout": 5,
        }
        if not challenge:  # authenticate the upgrade too (websockets >= 14 spelling)
            headers = {"Authorization": f"Bearer {token}"}
            options["websocket_kw_args"] = {"additional_headers": headers}
        return driver_cls(options)

    bot = make_driver(bot_token)
    human = make_driver(human_token)
    frames = Frames()
    ws_errors: list[str] = []

    def socket_thread() -> None:
        # init_websocket uses asyncio.get_event_loop(): give this thread a loop of its own.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            bot.init_websocket(frames.handler)
        except Exception as exc:
            ws_errors.append(f"{type(exc).__name__}: {exc}")
        # The driver leaves its connection's keepalive task behind when it stops.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    # login() in token mode is GET /users/me and stores the token the socket authenticates with.
    me: dict[str, Any] = {}

    def get_me() -> tuple[bool, Any]:
        me.update(bot.login())
        human.login()
        ok = bool(ID_RE.match(me.get("id", ""))) and me.get("is_bot") is True
        return ok, {"id": me.get("id"), "username": me.get("username"), "is_bot": me.get("is_bot")}

    if not step("get_me", get_me):
        raise RuntimeError("login failed; nothing else can run")

    thread = threading.Thread(target=socket_thread, name="mattermostdriver-websocket", daemon=True)
    thread.start()
    hello = frames.wait(lambda f: f if f.get("event") == "hello" else None)
    report(
        "ws_hello",
        hello is not None
        and hello.get("seq") == 0
        and bool(ID_RE.match(hello.get("data", {}).get("connection_id", ""))),
        hello or {"error": "no hello", "ws_errors": ws_errors},
    )
    # A header-authenticated connection ignores the driver's later authentication_challenge; the
    # frames passed to the handler are raw JSON text.
    report("ws_frames_are_text", frames.raw_types <= {"str"}, sorted(frames.raw_types))

    users = bot.users
    posts = bot.posts
    human_user: dict[str, Any] = {}

    def get_user() -> tuple[bool, Any]:
        human_user.update(users.get_user(human_id))
        return human_user.get("id") == human_id, {"id": human_user.get("id")}

    step("get_user", get_user)

    def get_user_by_username() -> tuple[bool, Any]:
        found = users.get_user_by_username(human_user["username"])
        return found.get("id") == human_id, {
            "id": found.get("id"),
            "username": found.get("username"),
        }

    step("get_user_by_username", get_user_by_username)

    dm: dict[str, Any] = {}

    def create_dm() -> tuple[bool, Any]:
        dm.update(bot.channels.create_direct_message_channel([me["id"], human_id]))
        name = "__".join(sorted([me["id"], human_id]))
        ok = dm.get("type") == "D" and dm.get("name") == name and dm.get("team_id") == ""
        return ok, {"id": dm.get("id"), "name": dm.get("name"), "type": dm.get("type")}

    if not step("create_direct_channel", create_dm):
        raise RuntimeError("create_direct_message_channel failed; nothing else can run")
    step(
        "create_direct_channel_again",
        lambda: (
            bot.channels.create_direct_message_channel([human_id, me["id"]]).get("id") == dm["id"],
            None,
        ),
    )
    since = int(time.time() * 1000) - 1
    made: dict[str, dict[str, Any]] = {}

    def create_root() -> tuple[bool, Any]:
        root = posts.create_post(
            {
                "channel_id": dm["id"],
                "message": "session root from mattermostdriver",
                "props": {"mmthreads_session": "py-1"},
            }
        )
        made["root"] = root
        props = root.get("props") or {}
        ok = (
            bool(ID_RE.match(root.get("id", "")))
            and root.get("user_id") == me["id"]
            and root.get("root_id") == ""
            and props.get("mmthreads_session") == "py-1"
            and props.get("from_bot") == "true"
        )
        return ok, {"id": root.get("id"), "props": props}

    if not step("create_root_post", create_root):
        raise RuntimeError("create_post failed; nothing else can run")
    root = made["root"]

    def create_reply() -> tuple[bool, Any]:
        reply = posts.create_post(
            {"channel_id": dm["id"], "message": "first turn", "root_id": root["id"]}
        )
        made["reply"] = reply
        return reply.get("root_id") == root["id"], {"id": reply.get("id")}

    step("create_reply", create_reply)

    def patch() -> tuple[bool, Any]:
        patched = posts.patch_post(made["reply"]["id"], {"message": "first turn (edited)"})
        ok = (
            patched.get("message") == "first turn (edited)"
            and patched.get("edit_at", 0) > 0
            and patched.get("root_id") == root["id"]
        )
        return ok, {"message": patched.get("message"), "edit_at": patched.get("edit_at")}

    step("patch_post", patch)

    def react() -> tuple[bool, Any]:
        reaction = bot.reactions.create_reaction(
            {"user_id": me["id"], "post_id": root["id"], "emoji_name": "white_check_mark"}
        )
        ok = reaction.get("post_id") == root["id"] and reaction.get("emoji_name") == (
            "white_check_mark"
        )
        return ok, reaction

    step("create_reaction", react)

    def reactions_of_post() -> tuple[bool, Any]:
        # The driver builds /posts/<id>//reactions (double slash).
        found = bot.reactions.get_reactions_of_post(root["id"])
        if not isinstance(found, list):
            return False, {"not_a_list": repr(found), "type": type(found).__name__}
        ok = any(
            r.get("user_id") == me["id"] and r.get("emoji_name") == "white_check_mark"
            for r in found
        )
        return ok, found

    step("get_reactions_of_post", reactions_of_post)

    content = b"hello from the fidelity suite (python)\n"

    def upload() -> tuple[bool, Any]:
        res = bot.files.upload_file(dm["id"], files={"files": ("notes.txt", content)})
        infos = res.get("file_infos") or []
        if infos:
            made["file"] = infos[0]
        ok = (
            len(infos) == 1
            and infos[0].get("name") == "notes.txt"
            and infos[0].get("size") == len(content)
            and bool(ID_RE.match(infos[0].get("id", "")))
        )
        return ok, res

    step("upload_file", upload)

    def post_with_file() -> tuple[bool, Any]:
        file_id = made["file"]["id"]
        post = posts.create_post(
            {
                "channel_id": dm["id"],
                "message": "see attachment",
                "root_id": root["id"],
                "file_ids": [file_id],
            }
        )
        made["file_post"] = post
        return post.get("file_ids") == [file_id], {
            "id": post.get("id"),
            "file_ids": post.get("file_ids"),
        }

    step("create_post_with_file", post_with_file)

    def file_metadata() -> tuple[bool, Any]:
        info = bot.files.get_file_metadata(made["file"]["id"])
        ok = info.get("id") == made["file"]["id"] and info.get("post_id") == made["file_post"]["id"]
        return ok, info

    step("get_file_metadata", file_metadata)

    def get_file() -> tuple[bool, Any]:
        res = bot.files.get_file(made["file"]["id"])  # a raw requests.Response
        return res.status_code == 200 and res.content == content, {
            "status": res.status_code,
            "content_type": res.headers.get("Content-Type"),
        }

    step("get_file", get_file)

    def get_thread() -> tuple[bool, Any]:
        thread = posts.get_thread(root["id"])
        got = sorted_by_create_at(thread)
        expected = [root["id"], made["reply"]["id"], made["file_post"]["id"]]
        edited = (thread.get("posts") or {}).get(made["reply"]["id"], {}).get("message")
        ok = (
            got == expected
            and len(thread.get("order", [])) == 3
            and edited == "first turn (edited)"
        )
        return ok, {"order": thread.get("order"), "sorted": got, "expected": expected}

    step("get_thread", get_thread)

    def human_post() -> tuple[bool, Any]:
        post = human.posts.create_post({"channel_id": dm["id"], "message": "hello bot"})
        made["human"] = post
        return post.get("user_id") == human_id, {"id": post.get("id")}

    step("human_create_post", human_post)

    def delete() -> tuple[bool, Any]:
        made["scratch"] = posts.create_post(
            {"channel_id": dm["id"], "message": "scratch, deleted below"}
        )
        res = posts.delete_post(made["scratch"]["id"])
        return isinstance(res, dict) and res.get("status") == "OK", res

    step("delete_post", delete)

    high_water = [0]

    def posts_since() -> tuple[bool, Any]:
        found = posts.get_posts_for_channel(dm["id"], params={"since": since})
        by_id = found.get("posts") or {}
        want = ["root", "reply", "file_post", "human", "scratch"]
        missing = [k for k in want if k in made and made[k]["id"] not in by_id]
        missing += [k for k in want if k not in made]
        high_water[0] = max((p["update_at"] for p in by_id.values()), default=0)
        scratch = by_id.get(made.get("scratch", {}).get("id", ""), {})
        ok = not missing and scratch.get("delete_at", 0) > 0
        return ok, {"missing": missing, "order": found.get("order")}

    step("get_posts_since", posts_since)

    def posts_since_latest() -> tuple[bool, Any]:
        found = posts.get_posts_for_channel(dm["id"], params={"since": high_water[0]})
        ok = found.get("order") == [] and not found.get("posts")
        return ok, {"since": high_water[0], "order": found.get("order")}

    step("get_posts_since_latest", posts_since_latest)

    # -- Events on the bot's socket
    def posted(check: str, key: str) -> Any:
        post = made.get(key)
        if post is None:
            report(check, False, "post was not created")
            return None
        found = frames.wait(event_with("posted", "post", lambda p: p.get("id") == post["id"]))
        if found is None:
            report(check, False, "no event")
            return None
        frame, inner = found
        ok = (
            frame.get("broadcast", {}).get("channel_id") == dm["id"]
            and frame["data"].get("channel_type") == "D"
            and inner.get("root_id") == post.get("root_id")
            and inner.get("message") == post.get("message")
        )
        report(check, ok, {"data": frame["data"], "seq": frame.get("seq")})
        return found

    posted("ws_posted_root", "root")
    posted("ws_posted_reply", "reply")
    posted("ws_posted_with_file", "file_post")
    from_human = posted("ws_posted_human", "human")
    if from_human is not None:
        frame, inner = from_human
        mentions = _inner(frame["data"].get("mentions"))
        report(
            "ws_posted_human_mentions_bot",
            mentions == [me["id"]],
            {"mentions": frame["data"].get("mentions")},
        )
        report(
            "ws_posted_human_sender",
            frame["data"].get("sender_name") == "@" + human_user.get("username", "")
            and inner.get("user_id") == human_id,
            {"sender_name": frame["data"].get("sender_name")},
        )
    reply_id = made.get("reply", {}).get("id")
    edited = frames.wait(
        event_with(
            "post_edited",
            "post",
            lambda p: p.get("id") == reply_id and p.get("message") == "first turn (edited)",
        )
    )
    report("ws_post_edited", edited is not None, edited[0] if edited else "no event")
    reacted = frames.wait(
        event_with(
            "reaction_added",
            "reaction",
            lambda r: r.get("post_id") == root["id"] and r.get("emoji_name") == "white_check_mark",
        )
    )
    report(
        "ws_reaction_added",
        reacted is not None and reacted[1].get("user_id") == me["id"],
        reacted[0] if reacted else "no event",
    )
    scratch_id = made.get("scratch", {}).get("id")
    deleted = frames.wait(event_with("post_deleted", "post", lambda p: p.get("id") == scratch_id))
    report("ws_post_deleted", deleted is not None, deleted[0] if deleted else "no event")

    # The driver does not check seq itself: do it here.
    events = frames.events()
    seqs = [e.get("seq") for e in events]
    report(
        "ws_contiguous_seq",
        seqs == list(range(len(seqs))),
        {"seqs": seqs, "events": [e.get("event") for e in events]},
    )
    # -- Errors a bot meets, as the driver raises them (requests.HTTPError subclasses whose
    # message is the server's translated `message`).
    exceptions = importlib.import_module("mattermostdriver.exceptions")

    def expect_error(check: str, exc_name: str, message: str, fn: Callable[[], Any]) -> None:
        def attempt() -> tuple[bool, Any]:
            try:
                unexpected = fn()
            except getattr(exceptions, exc_name) as exc:
                return str(exc) == message, {"raised": type(exc).__name__, "message": str(exc)}
            return False, {"unexpected_success": unexpected}

        step(check, attempt)

    expect_error(
        "error_unknown_user",
        "ResourceNotFound",
        "Unable to find the user.",
        lambda: users.get_user("x" * 26),
    )
    expect_error(
        "error_reply_to_reply",
        "InvalidOrMissingParameters",
        "Invalid RootId parameter.",
        lambda: posts.create_post(
            {"channel_id": dm["id"], "message": "nested", "root_id": made["reply"]["id"]}
        ),
    )
    expect_error(
        "error_message_too_long",
        "InvalidOrMissingParameters",
        "Post Message property is longer than the maximum permitted length.",
        lambda: posts.create_post({"channel_id": dm["id"], "message": "x" * 16384}),
    )
    expect_error(
        "error_no_session",
        "NoAccessTokenProvided",
        "Invalid or expired session, please login again.",
        lambda: make_driver("").users.get_user("me"),
    )

    # The driver always sends authentication_challenge (seq 1).  On an unauthenticated upgrade
    # the server registers the connection (hello, seq 0) and then replies OK; on an upgrade that
    # carried the token it ignores the challenge and sends no reply at all.
    replies = [f for f in frames.frames if f.get("seq_reply") == 1]
    hello_at = next((i for i, f in enumerate(frames.frames) if f.get("event") == "hello"), -1)
    if challenge:
        reply_at = frames.frames.index(replies[0]) if replies else -1
        report(
            "ws_challenge_reply_after_hello",
            len(replies) == 1 and replies[0].get("status") == "OK" and 0 <= hello_at < reply_at,
            {"replies": replies, "hello_at": hello_at, "reply_at": reply_at},
        )
    else:
        report("ws_challenge_ignored", not replies, replies)
    failed_replies = [f for f in frames.frames if f.get("status") not in (None, "OK")]
    report(
        "ws_no_failed_replies", not failed_replies and not ws_errors, failed_replies or ws_errors
    )

    names = {
        "root": "root_id",
        "reply": "reply_id",
        "file_post": "file_post_id",
        "file": "file_id",
        "human": "human_post_id",
        "scratch": "deleted_post_id",
    }
    created = {name: made[key]["id"] for key, name in names.items() if key in made}
    report("created", True, {"bot_id": me["id"], "channel_id": dm["id"], **created})
    bot.disconnect()
    thread.join(timeout=3)


def main(argv: list[str]) -> int:
    challenge = len(argv) > 1 and argv[1] == "--challenge"
    args = argv[2:6] if challenge else argv[1:5]
    env = ["MM_URL", "MM_BOT_TOKEN", "MM_HUMAN_ID", "MM_HUMAN_TOKEN"]
    values = [args[i] if i < len(args) else os.environ.get(name, "") for i, name in enumerate(env)]
    if not all(values):
        sys.stderr.write("usage: driver_flow.py [--challenge] URL BOT_TOKEN HUMAN_ID HUMAN_TOKEN\n")
        return 2

    def give_up() -> None:
        report("overall_timeout", False, f"flow did not finish within {OVERALL_TIMEOUT_S} s")
        os._exit(2)

    watchdog = threading.Timer(OVERALL_TIMEOUT_S, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        run(*values, challenge=challenge)
    except Exception as exc:
        report(
            "crash",
            False,
            {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()},
        )
        return 2
    finally:
        watchdog.cancel()
    return 0 if _failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
