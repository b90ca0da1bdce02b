"""Validate a desired state against the server's catalogue before any change.

Event types are listed once; subcategories only for the event names the state uses
that have them. A value the catalogue does not list fails the plan, naming the entry,
the value and a suggestion, unless ``allow_unlisted`` (then it is reported in
`Plan.unlisted`). A catalogue that cannot be read fails the plan too: no plan, no change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fullstory_async._bulk.desired import DesiredState, did_you_mean
from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async._models import EventTypeDefinition

if TYPE_CHECKING:
    from fullstory_async._bulk.operations import Operations


class _Catalogue:
    def __init__(self, webhooks: Operations, definitions: list[EventTypeDefinition]) -> None:
        self._webhooks = webhooks
        self.definitions = {d.event_name: d for d in definitions}
        self._subcategories: dict[str, list[str]] = {}

    async def subcategories(self, event_name: str) -> list[str]:
        if event_name not in self._subcategories:
            listed = self._webhooks.list_event_subcategories(event_name)
            self._subcategories[event_name] = [s.subcategory async for s in listed]
        return self._subcategories[event_name]


async def check_event_types(webhooks: Operations, desired: DesiredState, *, allow_unlisted: bool) -> tuple[str, ...]:
    """Raise `InvalidArgumentError` for the first event type the catalogue rejects; return the unlisted ones."""
    if not any(endpoint.event_types for endpoint in desired.endpoints):
        return ()
    catalogue = _Catalogue(webhooks, await webhooks.list_event_types())
    unlisted: list[str] = []
    for number, endpoint in enumerate(desired.endpoints):
        for index, event_type in enumerate(endpoint.event_types):
            field = f"endpoints[{number}].event_types[{index}]"
            name, subcategory = event_type.event_name, event_type.subcategory
            definition = catalogue.definitions.get(name)
            if definition is None:
                problem = (
                    f"{name!r} is not an event type of this account{did_you_mean(name, list(catalogue.definitions))}"
                )
                if not allow_unlisted:
                    raise InvalidArgumentError(f"{field}.event_name", f"{problem} ({endpoint.url})")
                unlisted.append(f"{field}.event_name: {problem}")
                continue
            if not definition.has_subcategories:
                if subcategory is not None:
                    raise InvalidArgumentError(
                        f"{field}.subcategory", f"{name} has no subcategories: remove it ({endpoint.url})"
                    )
                continue
            if subcategory is None:
                raise InvalidArgumentError(
                    f"{field}.subcategory",
                    f"{name} needs a subcategory: copy one from "
                    f"`fullstory-async subcategories {name}` ({endpoint.url})",
                )
            values = await catalogue.subcategories(name)
            if subcategory not in values:
                import difflib  # on first use: keeps `import fullstory_async` light

                close = difflib.get_close_matches(subcategory, values, n=1, cutoff=0.6)
                hint = f' (did you mean "{close[0]}"?)' if close else f"; see `fullstory-async subcategories {name}`"
                problem = f"{subcategory!r} is not a subcategory of {name}{hint}"
                if not allow_unlisted:
                    raise InvalidArgumentError(f"{field}.subcategory", f"{problem} ({endpoint.url})")
                unlisted.append(f"{field}.subcategory: {problem}")
    return tuple(unlisted)
