"""List answers that fit in one MQTT message: Kubernetes-style limit/continue pages cut by count and by bytes."""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgekube.model import jsoncodec
from edgekube.model.errors import ValidationError
from edgekube.model.types import Obj
from edgekube.model.wire import MAX_PAYLOAD_BYTES

SortKey = tuple[str, ...]
#: Room left in a message for the answer's envelope (ok, continue, remainingItemCount) and the MQTT properties.
ENVELOPE_BYTES = 16 * 1024
BUDGET = MAX_PAYLOAD_BYTES - ENVELOPE_BYTES


@dataclass(frozen=True)
class Page:
    items: list[Obj]
    continue_token: str | None  # None: this was the last page
    remaining: int  # items after this page (as of now: the list may change between pages)


def encode_token(key: SortKey) -> str:
    return base64.urlsafe_b64encode(jsoncodec.dumpb(list(key))).decode().rstrip("=")


def decode_token(token: str) -> SortKey:
    try:
        key = jsoncodec.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        key = None
    if not isinstance(key, list) or not all(isinstance(part, str) for part in key):
        raise ValidationError(
            f"continue: {token[:40]!r} is not a continue token from this master",
            hint="start the list again without continue",
        )
    return tuple(key)


def page(
    items: Sequence[Obj],
    key: Callable[[Obj], SortKey],
    *,
    limit: int | None,
    token: str | None,
    budget: int = BUDGET,
) -> Page:
    """The page of `items` (sorted by `key`) after `token`: at most `limit` items and `budget` bytes of JSON.

    Without a limit the whole list is the page, and a list too big for one message is refused (naming the way
    out) rather than cut short behind the caller's back. Tokens hold the last key returned, so a page starts
    after it even if objects came or went in between (they are listed, or not, as they are then).
    """
    start = bisect_right([key(item) for item in items], decode_token(token)) if token else 0
    rest = items[start:]
    out: list[Obj] = []
    size = 0
    for item in rest:
        if limit is not None and len(out) >= limit:
            break
        size += len(jsoncodec.dumpb(item)) + 1
        if size > budget:
            if limit is None:
                raise ValidationError(
                    f"limit: the list of {len(rest)} items is over the {MAX_PAYLOAD_BYTES}-byte message limit",
                    hint="ask in pages with limit and continue (ekctl does)",
                )
            if not out:
                raise ValidationError(f"{item['kind']} {item['metadata']['name']}: too big for one message")
            break
        out.append(item)
    remaining = len(rest) - len(out)
    return Page(out, encode_token(key(out[-1])) if remaining and out else None, remaining)
