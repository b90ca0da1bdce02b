"""The public namespace of fullstory_async.receiving: complete, sorted, and its error in the tree."""

from __future__ import annotations

import inspect

import fullstory_async.receiving as receiving
from fullstory_async import FullstoryError


def test_all_is_sorted_and_unique() -> None:
    """__all__ is sorted and has no duplicates."""
    assert receiving.__all__ == sorted(receiving.__all__)
    assert len(set(receiving.__all__)) == len(receiving.__all__)


def test_all_is_complete() -> None:
    """Every public name the package binds is exported, and every exported name exists."""
    public = {
        name for name, value in vars(receiving).items() if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(receiving.__all__) == public


def test_the_names_the_issue_promises_are_exported() -> None:
    """verify, sign, WebhookEvent, SignatureVerificationError and a receiver are public."""
    assert {
        "verify",
        "sign",
        "WebhookEvent",
        "SignatureVerificationError",
        "WebhookReceiver",
        "add_webhook_route",
    } <= set(receiving.__all__)


def test_signature_error_is_a_fullstory_error_with_a_reason() -> None:
    """SignatureVerificationError is rooted at FullstoryError and carries a machine-readable reason."""
    assert issubclass(receiving.SignatureVerificationError, FullstoryError)
    error = receiving.SignatureVerificationError(receiving.VerificationFailure.MISMATCH, "x")
    assert error.reason == "mismatch"
    assert {reason.value for reason in receiving.VerificationFailure} == {
        "missing_header",
        "malformed_header",
        "unknown_org",
        "stale_timestamp",
        "mismatch",
        "malformed_body",
    }


def test_no_record_is_collected_as_a_test_class() -> None:
    """No exported class starts with "Test", so importing them into a test module is safe."""
    assert not [name for name in receiving.__all__ if name.startswith("Test")]
