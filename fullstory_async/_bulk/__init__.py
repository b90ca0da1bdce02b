"""The bulk wing: many endpoints at once.

* `desired` reads desired-state files (TOML, JSON) and provision input.
* `streaming` applies an async function to a lazily pulled input with bounded concurrency.
* `provision` is ``ensure_endpoint`` and ``provision``: create without duplicates.
* `reconcile` is ``plan`` and ``apply``: make the server match a desired state.
"""
