"""Errors survive pickling (process pools, pytest-xdist): every field, the message, the class."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from fullstory_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    ClientClosedError,
    DesiredStateError,
    Endpoint,
    EndpointExistsError,
    FullstoryError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from fullstory_async._messages import ApiResponse

HEADERS = ApiResponse(429, {"Retry-After": "2", "X-Request-Id": "r-1"}).headers  # read-only, as a response's
ENDPOINT = Endpoint("ep-1", datetime(2020, 4, 1, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC), True, "https://e.com/h")

ERRORS = [
    InvalidArgumentError("url", "must be an absolute http(s) URL"),
    DesiredStateError("desired.toml: endpoints[0]", "unknown key"),
    ClientClosedError("the client is closed"),
    EndpointExistsError(ENDPOINT),
    APIConnectionError("connection reset", method="GET", path="/webhooks/v1/endpoints"),
    APITimeoutError("timed out after 30s"),
    ResponseDecodeError("not JSON", field="$.id", body=b"<html>", method="GET", path="/x"),
    BadRequestError("url is required", status=400, code="required_field", headers=HEADERS, body=b"{}"),
    NotFoundError("not found", status=404, request_id="r-1", headers=HEADERS, method="GET", path="/x"),
    RateLimitError("too many", status=429, retry_after=2.0, headers=HEADERS),
    ServerError("oops", status=503),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_every_error_survives_pickling(error: FullstoryError) -> None:
    error.attempts = 3
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
    if isinstance(error, APIStatusError):
        with pytest.raises(TypeError):
            copy.headers["new"] = "value"  # still read-only


def test_pickling_keeps_each_mapping_as_it_was_and_survives_a_cycle() -> None:
    """Headers given as a plain dict stay a dict; an error that refers to itself is pickled once."""
    error = ServerError("oops", status=503, headers={"retry-after": "1"})
    error.me = error  # type: ignore[attr-defined]
    copy = pickle.loads(pickle.dumps(error))
    assert copy.me is copy
    assert copy.headers == {"retry-after": "1"}
    copy.headers["x"] = "y"  # a dict, as it was given
