"""List answers in pages: limit/continue as Kubernetes does, cut by bytes so every answer fits in one message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.paging import BUDGET, decode_token, encode_token, page
from edgekube.model.errors import ValidationError
from edgekube.model.wire import MAX_PAYLOAD_BYTES, ApiRequest, ApiResponse, Verb
from edgekube.store.state import TinyStateStore


def obj(name: str, namespace: str = "default", pad: int = 0) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "pad": "x" * pad}


def key(o: dict[str, Any]) -> tuple[str, ...]:
    return (o["metadata"]["namespace"], o["metadata"]["name"])


ITEMS = [obj(f"p{n:02d}") for n in range(10)]


def names(items: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in items]


def test_pages_by_limit_until_no_token() -> None:
    seen, token, pages = [], None, 0
    while True:
        cut = page(ITEMS, key, limit=4, token=token)
        seen += names(cut.items)
        pages += 1
        assert cut.remaining == 10 - len(seen)
        token = cut.continue_token
        if token is None:
            break
    assert seen == names(ITEMS)
    assert pages == 3


def test_a_page_resumes_after_the_last_key_even_if_the_list_changed() -> None:
    first = page(ITEMS, key, limit=3, token=None)
    changed = [o for o in ITEMS if o["metadata"]["name"] != "p02"] + [obj("p015")]
    changed.sort(key=key)
    second = page(changed, key, limit=3, token=first.continue_token)
    assert names(second.items) == ["p03", "p04", "p05"]  # p015 sorts before p02: behind us, as in Kubernetes


def test_a_page_is_cut_by_bytes_before_the_limit() -> None:
    big = [obj(f"b{n}", pad=400) for n in range(10)]
    cut = page(big, key, limit=100, token=None, budget=1500)
    assert 1 <= len(cut.items) < 10
    assert len(json.dumps(cut.items)) <= 1500
    assert cut.continue_token is not None and cut.remaining == 10 - len(cut.items)


def test_without_a_limit_a_list_too_big_for_one_message_is_refused_with_the_way_out() -> None:
    big = [obj(f"b{n}", pad=400) for n in range(10)]
    with pytest.raises(ValidationError, match="limit: the list of 10 items is over") as err:
        page(big, key, limit=None, token=None, budget=1500)
    assert "continue" in err.value.hint
    assert page(ITEMS, key, limit=None, token=None).continue_token is None  # small lists need no paging


@pytest.mark.parametrize("token", ["not base64!", encode_token(("a",))[:-2] + "@@", "eyJhIjoxfQ"])
def test_a_token_not_from_this_master_is_invalid(token: str) -> None:
    with pytest.raises(ValidationError, match=r"continue: .* is not a continue token"):
        page(ITEMS, key, limit=2, token=token)


def test_tokens_round_trip() -> None:
    assert decode_token(encode_token(("default", "web-0"))) == ("default", "web-0")


@pytest.fixture
def api() -> Iterator[Api]:
    with TinyStateStore(None) as store:
        api = Api(CachedStore(store), lambda node: node)
        for n in range(7):
            api.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web-{n}"},
                                  "spec": {"containers": [{"name": "app", "image": "busybox"}]}}))  # fmt: skip
        yield api


def test_the_api_answers_a_limited_list_with_continue_and_remaining(api: Api) -> None:
    response = api.handle(ApiRequest(verb=Verb.LIST, kind="Pod", namespace="default", limit=3))
    wire = json.loads(response.encode())
    assert [i["metadata"]["name"] for i in wire["items"]] == ["web-0", "web-1", "web-2"]
    assert wire["remainingItemCount"] == 4 and wire["continue"]
    again = ApiRequest.decode(
        json.dumps(
            {"schema": "edgekube/v1", "verb": "list", "kind": "Pod", "limit": 3, "continue": wire["continue"]}
        ).encode()
    )
    last = api.handle(again)
    assert [i["metadata"]["name"] for i in last.items or []] == ["web-3", "web-4", "web-5"]
    final = api.handle(again.model_copy(update={"continue_token": last.continue_token}))
    assert [i["metadata"]["name"] for i in final.items or []] == ["web-6"]
    assert final.continue_token is None and final.remaining_item_count == 0
    assert ApiResponse.decode(final.encode()) == final


def test_the_api_refuses_a_bad_token_as_invalid(api: Api) -> None:
    response = api.handle(ApiRequest(verb=Verb.LIST, kind="Pod", limit=3, continue_token="garbage"))
    assert not response.ok and response.error is not None
    assert response.error.reason == "Invalid" and "continue" in response.error.message


def test_the_budget_leaves_room_for_the_envelope() -> None:
    assert BUDGET + 8 * 1024 < MAX_PAYLOAD_BYTES


def test_events_of_one_second_page_in_the_order_they_were_recorded() -> None:
    with TinyStateStore(None) as store:
        api = Api(CachedStore(store), lambda node: node)
        target = {"kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u"}}
        for reason in ("Scheduled", "Pulling", "Pulled", "Created", "Started"):
            api.events.record(target, reason, reason.lower(), component="test")
        whole = [e["reason"] for e in api.handle(ApiRequest(verb=Verb.LIST, kind="Event")).items or []]
        paged, token = [], None
        while True:
            answer = api.handle(ApiRequest(verb=Verb.LIST, kind="Event", limit=2, continue_token=token))
            paged += [e["reason"] for e in answer.items or []]
            token = answer.continue_token
            if token is None:
                break
        assert whole == paged == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
