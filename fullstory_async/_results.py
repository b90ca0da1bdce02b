"""What the core names of the reconciling operations: the `Outcome` of an endpoint, and ``plan``'s delete limit.

`ensure_endpoint` returns an `Outcome`; the bulk wing's result records
(`fullstory_async._bulk.results`) carry one. They live in the core, so `Webhooks` can name
them without importing the bulk wing.
"""

from __future__ import annotations

import enum

DEFAULT_MAX_DELETES = 10
"""``plan(prune=True)`` refuses to delete more endpoints than this unless ``max_deletes`` is raised."""


class Outcome(enum.StrEnum):
    """What happened to one desired endpoint."""

    CREATED = "created"
    """It did not exist and was created."""
    UPDATED = "updated"
    """It existed with other settings and was updated."""
    UNCHANGED = "unchanged"
    """It existed with these settings already."""
    SKIPPED = "skipped"
    """It existed and was left as it was (``on_exists="skip"``)."""
    DELETED = "deleted"
    """It was deleted (declarative sync with ``prune``)."""
    FAILED = "failed"
    """The item failed; see its ``error``."""
