"""The generated events as a Segment or RudderStack source sends them (`--format segment`).

Each event becomes a call: `page.viewed` a page call, everything else a track call named after
the event type, with `messageId` from the event id, the user as `userId` (`anonymousId` "server"
for what no user did), the account as `context.groupId`, and every other field in `properties`.
The account's attributes (plan, segment, region, rep, channel) are not on the calls: a group call
carries them as traits, sent with an account's first call and again whenever they change, so the
definitions in definitions/segment/ read them as `group.plan`, ... and measure the same north
stars from this shape as definitions/ do from NSM's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from processor.generate.product import Event

ACCOUNT_TRAITS = ("plan", "segment", "region", "rep", "channel")
SERVER = "server"  # the anonymousId of calls no user made (integrations, billing, spend)
_ENVELOPE = {"type", "timestamp", "event_id", "account_id", "user_id", "properties"}


class SegmentShaper:
    """Turns NSM events into calls; remembers the traits last sent per account."""

    def __init__(self) -> None:
        self._traits: dict[str, dict[str, Any]] = {}

    def calls(self, event: Event) -> Iterator[dict[str, Any]]:
        account = event.get("account_id")
        who = {"userId": event["user_id"]} if "user_id" in event else {"anonymousId": SERVER}
        if account is not None:
            traits = {name: event[name] for name in ACCOUNT_TRAITS if name in event}
            if self._traits.get(account) != traits:
                self._traits[account] = traits
                yield {
                    "type": "group",
                    "messageId": f"{event['event_id']}-group",
                    "timestamp": event["timestamp"],
                    **who,
                    "groupId": account,
                    "traits": traits,
                }
        properties = {
            **{k: v for k, v in event.items() if k not in _ENVELOPE and k not in ACCOUNT_TRAITS},
            **event.get("properties", {}),
        }
        call: dict[str, Any]
        if event["type"] == "page.viewed":
            call = {"type": "page", "name": properties.get("path")}
        else:
            call = {"type": "track", "event": event["type"]}
        call.update(
            messageId=event["event_id"],
            timestamp=event["timestamp"],
            **who,
            context={"groupId": account} if account is not None else {},
            properties=properties,
        )
        yield call
