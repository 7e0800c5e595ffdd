"""The Segment/RudderStack tracking spec as NSM reads it (CONTRACT §1, docs/segment.md).

A call is a JSON object with a call `type` (`track`, `identify`, `group`, `page`, `screen`,
`alias`), `messageId`, `timestamp`, `userId` or `anonymousId`, and `properties`, `traits` and
`context`. This module holds the rules that turn a call into NSM's terms, in one place for the
decoder (processor/events.py, `NSM_INPUT_FORMAT=segment`), the collector (`nsm collect`) and the
generator: which event type a call is, its event id, and the account it belongs to. Pure.

The native core (native/src/lib.rs) decodes the same mapping; the differential tests hold the two
to each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processor.engine.fields import preview
from processor.engine.traits import GROUP_CALL as GROUP
from processor.engine.traits import account_of

__all__ = ["CALL_TYPES", "GROUP", "MESSAGE_ID", "TRACK", "account_of", "event_type"]

CALL_TYPES = ("track", "identify", GROUP, "page", "screen", "alias")
TRACK = "track"

# The fields of a call NSM reads to map it; everything else stays in the event as it came.
EVENT_NAME = "event"
MESSAGE_ID = "messageId"


def event_type(call: Mapping[str, Any]) -> str | tuple[str]:
    """The event type of a call: a track call's `event`, otherwise the call type.

    A 1-tuple holding the reason's detail when the call has none (reason `missing_type`).
    """
    call_type = call.get("type")
    if call_type == TRACK:
        name = call.get(EVENT_NAME)
        if type(name) is str and name:
            return name
        if name is None:
            return ("a track call without an event name",)
        return (f"a track call's event {preview(name)} is not a name",)
    if call_type in CALL_TYPES:
        return str(call_type)
    if call_type is None:
        return ("no call type (track, identify, group, page, screen or alias)",)
    return (f"call type {preview(call_type)} is not one of {', '.join(CALL_TYPES)}",)
