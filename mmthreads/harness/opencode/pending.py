"""Pending permissions and questions: the turns that wait on a human.

Sans-IO, like ``state.py``.  The rules follow OpenCode's ``permission/next.ts`` (reference §2.7):

- a tool asks for ``permission`` with ``patterns``; the rules (server config, then the
  session's own, then this instance's "always" approvals) are searched last-match-first; no match
  means ``ask``;
- ``once`` lets this call run; ``always`` also approves the request's ``always`` patterns for the
  instance (in memory) and resolves the session's other requests they now cover;
- ``reject`` fails the call and rejects every other pending request of the session.

A waiting turn polls nothing: it waits (in the Trio layer) until ``outcome`` is set, which
always comes with a published event.  ``dialect="legacy"`` publishes ``permission.updated`` and
``permission.replied {sessionID, permissionID, response}`` instead, and has no questions.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from mmthreads.harness.opencode.tools import DENIED, wildcard_match
from mmthreads.harness.opencode.wire import (
    CreatedTime,
    LegacyPermission,
    PermissionRequest,
    PermissionRule,
    QuestionInfo,
    QuestionRequest,
    Reply,
    ToolRef,
)

if TYPE_CHECKING:
    from mmthreads.harness.opencode.state import OpenCodeState
    from mmthreads.harness.opencode.wire import Session

__all__ = ["PendingPermission", "PendingPrompts", "PendingQuestion", "PermissionDenied"]

logger = logging.getLogger(__name__)

Action = Literal["allow", "deny", "ask"]


class PermissionDenied(Exception):
    """A rule denies the call; ``str()`` is the tool error the model gets."""


class PendingPermission(msgspec.Struct, kw_only=True):
    """A permission request and, once answered, its outcome."""

    request: PermissionRequest
    directory: str
    outcome: Reply | None = None
    #: The feedback of a ``reject`` with a message.
    message: str | None = None


class PendingQuestion(msgspec.Struct, kw_only=True):
    """A question request and, once answered, the answers (or the rejection)."""

    request: QuestionRequest
    directory: str
    answers: list[list[str]] | None = None
    rejected: bool = False

    @property
    def settled(self) -> bool:
        """Whether the question was answered or rejected."""
        return self.rejected or self.answers is not None


class PendingPrompts:
    """The pending permissions and questions of all instances.

    Args:
        state: The state to publish through.
        config_rules: The server config's ``permission`` rules, e.g. ``bash: ask``.
    """

    def __init__(self, state: OpenCodeState, config_rules: list[PermissionRule]) -> None:
        self._state = state
        self.config_rules = config_rules
        self.permissions: dict[str, PendingPermission] = {}
        self.questions: dict[str, PendingQuestion] = {}
        #: "always" approvals, per instance directory; in memory only, as on the real server.
        self.approved: dict[str, list[PermissionRule]] = {}

    def __repr__(self) -> str:
        return (
            f"<PendingPrompts permissions={len(self.permissions)} questions={len(self.questions)}>"
        )

    # -- permissions ---------------------------------------------------------------------------

    def evaluate(self, session: Session, permission: str, pattern: str) -> Action:
        """The action the rules give for one pattern (last matching rule wins)."""
        rules = [
            *self.config_rules,
            *(session.permission or []),
            *self.approved.get(session.directory, []),
        ]
        for rule in reversed(rules):
            if wildcard_match(rule.permission, permission) and wildcard_match(
                rule.pattern, pattern
            ):
                return rule.action
        return "ask"

    def ask_permission(
        self,
        session: Session,
        *,
        permission: str,
        patterns: list[str],
        metadata: dict[str, Any],
        always: list[str],
        tool: ToolRef,
        title: str,
    ) -> PendingPermission | None:
        """Ask for a permission, unless the rules allow it.

        Returns:
            The pending request (published as ``permission.asked``), or ``None`` if allowed.

        Raises:
            PermissionDenied: A rule says ``deny``.
        """
        for pattern in patterns:
            action = self.evaluate(session, permission, pattern)
            if action == "deny":
                relevant = [
                    msgspec.to_builtins(r)
                    for r in [*self.config_rules, *(session.permission or [])]
                    if wildcard_match(r.permission, permission)
                ]
                rules = msgspec.json.encode(relevant).decode()
                raise PermissionDenied(DENIED.format(rules=rules))
            if action == "ask":
                break
        else:
            return None
        request = PermissionRequest(
            id=self._state.ids.ascending("per"),
            session_id=session.id,
            permission=permission,
            patterns=patterns,
            metadata=metadata,
            always=always,
            tool=tool,
        )
        pending = PendingPermission(request=request, directory=session.directory)
        self.permissions[request.id] = pending
        if self._state.current:
            self._state.publish(session, "permission.asked", request)
        else:
            legacy = LegacyPermission(
                id=request.id,
                type=permission,
                pattern=patterns[0] if len(patterns) == 1 else patterns,
                session_id=session.id,
                message_id=tool.message_id,
                call_id=tool.call_id,
                title=title,
                metadata=metadata,
                time=CreatedTime(created=self._state.clock_ms()),
            )
            self._state.publish(session, "permission.updated", legacy)
        return pending

    def reply_permission(self, request_id: str, reply: Reply, message: str | None = None) -> bool:
        """Answer a pending permission.

        Returns:
            ``False`` if no such request is pending.
        """
        pending = self.permissions.pop(request_id, None)
        if pending is None:
            return False
        session_id = pending.request.session_id
        self._settle(pending, reply, message)
        if reply == "reject":
            for other in self._of_session(session_id):
                del self.permissions[other.request.id]
                self._settle(other, "reject", None)
        elif reply == "always":
            approvals = self.approved.setdefault(pending.directory, [])
            for pattern in pending.request.always:
                approvals.append(
                    PermissionRule(
                        permission=pending.request.permission, pattern=pattern, action="allow"
                    )
                )
            session = self._state.sessions.get(session_id)
            for other in self._of_session(session_id):
                covered = session is not None and all(
                    self.evaluate(session, other.request.permission, p) == "allow"
                    for p in other.request.patterns
                )
                if covered:
                    del self.permissions[other.request.id]
                    self._settle(other, "always", None)
        return True

    def permissions_in(self, directory: str) -> list[PermissionRequest]:
        """``GET /permission``: the instance's pending requests."""
        return [p.request for p in self.permissions.values() if p.directory == directory]

    def _of_session(self, session_id: str) -> list[PendingPermission]:
        return [p for p in self.permissions.values() if p.request.session_id == session_id]

    def _settle(self, pending: PendingPermission, reply: Reply, message: str | None) -> None:
        pending.outcome = reply
        pending.message = message
        session = self._state.sessions.get(pending.request.session_id)
        if session is None:
            return
        request_id = pending.request.id
        if self._state.current:
            props = {"sessionID": session.id, "requestID": request_id, "reply": reply}
        else:
            props = {"sessionID": session.id, "permissionID": request_id, "response": reply}
        self._state.publish(session, "permission.replied", props)

    # -- questions -----------------------------------------------------------------------------

    def ask_question(
        self, session: Session, questions: list[QuestionInfo], tool: ToolRef
    ) -> PendingQuestion:
        """Ask the user; publishes ``question.asked``."""
        request = QuestionRequest(
            id=self._state.ids.ascending("que"),
            session_id=session.id,
            questions=questions,
            tool=tool,
        )
        pending = PendingQuestion(request=request, directory=session.directory)
        self.questions[request.id] = pending
        self._state.publish(session, "question.asked", request)
        return pending

    def reply_question(self, request_id: str, answers: list[list[str]]) -> bool:
        """Answer a question; publishes ``question.replied``.  ``False`` if unknown."""
        pending = self.questions.pop(request_id, None)
        if pending is None:
            return False
        pending.answers = answers
        session = self._state.sessions.get(pending.request.session_id)
        if session is not None:
            props = {"sessionID": session.id, "requestID": request_id, "answers": answers}
            self._state.publish(session, "question.replied", props)
        return True

    def reject_question(self, request_id: str) -> bool:
        """Dismiss a question; publishes ``question.rejected``.  ``False`` if unknown."""
        pending = self.questions.pop(request_id, None)
        if pending is None:
            return False
        pending.rejected = True
        session = self._state.sessions.get(pending.request.session_id)
        if session is not None:
            props = {"sessionID": session.id, "requestID": request_id}
            self._state.publish(session, "question.rejected", props)
        return True

    def questions_in(self, directory: str) -> list[QuestionRequest]:
        """``GET /question``: the instance's pending questions."""
        return [q.request for q in self.questions.values() if q.directory == directory]

    # -- whole sessions ------------------------------------------------------------------------

    def clear_session(self, session_id: str) -> None:
        """Reject everything a session waits on (abort, delete), with the usual events."""
        for pending in self._of_session(session_id):
            del self.permissions[pending.request.id]
            self._settle(pending, "reject", None)
        for question in [q for q in self.questions.values() if q.request.session_id == session_id]:
            self.reject_question(question.request.id)

    def forget(self) -> None:
        """Lose everything pending and every approval, silently (the process restarted)."""
        for pending in self.permissions.values():
            pending.outcome = "reject"
        for question in self.questions.values():
            question.rejected = True
        self.permissions.clear()
        self.questions.clear()
        self.approved.clear()
        logger.info("pending permissions, questions and approvals forgotten")
