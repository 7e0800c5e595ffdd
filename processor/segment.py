"""The Segment/RudderStack tracking spec as NSM reads it (CONTRACT §1, docs/segment.md).

A call is a JSON object with a call `type` (`track`, `identify`, `group`, `page`, `screen`,
`alias`), `messageId`, `timestamp`, `userId` or `anonymousId`, and `properties`, `traits` and
`context`. How a call reads as an event (its type, its event id) and which account it belongs to
are the engine's rules (native/engine, `NSM_INPUT_FORMAT=segment`, docs/semantics.md); this module
names the call types and fields the collector and the generator write.
"""

from __future__ import annotations

import nsm_native

__all__ = ["CALL_TYPES", "GROUP", "MESSAGE_ID", "TRACK", "account_of"]

GROUP = "group"
TRACK = "track"
CALL_TYPES = (TRACK, "identify", GROUP, "page", "screen", "alias")
EVENT_NAME = "event"
MESSAGE_ID = "messageId"


def account_of(call: bytes) -> str | None:
    """The label of the account a call (its JSON) belongs to: its `groupId`, else its
    `context.groupId`; None when it names none."""
    return nsm_native.account_of(call)
