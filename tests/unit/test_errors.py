"""The error map: every error class carries its wire reason, and a wire error turns back into the same class.

`edgekube.errors` is public library surface (README, "Use as a library"); these tests pin it.
"""

from __future__ import annotations

import pytest

import edgekube.errors as public
from edgekube.errors import (
    BusError,
    ConflictError,
    EdgekubeError,
    InternalError,
    NotFoundError,
    RuntimeFailure,
    StoreError,
    ValidationError,
)
from edgekube.model.wire import ApiResponse, ErrorInfo, raise_for


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ValidationError("v"), "Invalid"),
        (NotFoundError("n"), "NotFound"),
        (ConflictError("c"), "Conflict"),
        (StoreError("s"), "Unavailable"),
        (BusError("b"), "Unavailable"),
        (RuntimeFailure("r", reason="ErrImagePull"), "Unavailable"),
        (EdgekubeError("e"), "Unavailable"),
        (RuntimeError("r"), "Internal"),
        (KeyError("k"), "Internal"),
    ],
)
def test_each_error_class_maps_to_its_reason(exc: Exception, reason: str) -> None:
    assert ErrorInfo.of(exc).reason == reason


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (ValidationError("spec.containers: Required value", hint="see lint"), ValidationError),
        (NotFoundError('pods "web" not found'), NotFoundError),
        (ConflictError("Pod default/web already exists"), ConflictError),
        (StoreError("the state store is closed"), EdgekubeError),
        (KeyError("metadata"), InternalError),
    ],
)
def test_a_wire_error_raises_the_class_it_was_made_from(exc: Exception, cls: type[EdgekubeError]) -> None:
    info = ErrorInfo.of(exc)
    decoded = ApiResponse.decode(ApiResponse(ok=False, error=info).encode()).error
    assert decoded is not None
    with pytest.raises(EdgekubeError) as caught:
        raise_for(decoded)
    assert type(caught.value) is cls
    assert (str(caught.value), caught.value.hint) == (info.message, info.hint)


def test_an_unexpected_exception_names_its_type_and_the_log_to_read() -> None:
    info = ErrorInfo.of(KeyError("metadata"), component="agent on pi-3")
    assert (info.reason, info.message, info.hint) == (
        "Internal",
        "internal error: KeyError: 'metadata'",
        "see the agent on pi-3's log",
    )


def test_an_unknown_reason_raises_the_base_error_with_its_message() -> None:
    with pytest.raises(EdgekubeError) as caught:
        raise_for(ErrorInfo(reason="Teapot", message="short and stout", hint="tip it"))
    assert type(caught.value) is EdgekubeError
    assert (str(caught.value), caught.value.hint) == ("short and stout", "tip it")


def test_an_error_answer_without_details_still_raises_with_a_hint() -> None:
    with pytest.raises(EdgekubeError, match="without details") as caught:
        raise_for(None)
    assert caught.value.hint


def test_the_errors_are_the_matching_builtins_too() -> None:
    assert issubclass(ValidationError, ValueError)
    assert issubclass(NotFoundError, LookupError)
    assert issubclass(StoreError, OSError)
    assert issubclass(BusError, ConnectionError)
    assert issubclass(RuntimeFailure, RuntimeError)


def test_the_public_module_exports_every_error_class() -> None:
    for name in public.__all__:
        cls = getattr(public, name)
        assert issubclass(cls, EdgekubeError), name
        assert cls.__doc__ and "\n" not in cls.__doc__.strip(), f"{name}: one-line docstring"
