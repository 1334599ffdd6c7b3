"""The names operators read for the codes statistics count by: registration types
(TD/T 1066, the ``registration_type`` of the common schema) and channels (the
``channel`` of an application in the common schema, and the ``channel`` of an
inbound client in ``inbound.clients``, which is what a case's submitter has).

Chinese names are the schema's (its descriptions list them: "100 首次登记，…");
the English msgids here are translated to exactly those (tests/console hold
them to it), so ``?lang=en`` gets English and the default gets the schema's words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bdchub.core.i18n import _

REGISTRATION_TYPES: dict[str, Callable[[], str]] = {
    "100": lambda: _("first registration"),
    "200": lambda: _("transfer registration"),
    "300": lambda: _("change registration"),
    "400": lambda: _("cancellation registration"),
    "500": lambda: _("correction registration"),
    "600": lambda: _("objection registration"),
    "700": lambda: _("advance notice registration"),
    "800": lambda: _("seizure registration"),
    "900": lambda: _("other registration"),
}

CHANNELS: dict[str, Callable[[], str]] = {
    # an application's channel (common schema)
    "county_window": lambda: _("county one-window platform"),
    "province_window": lambda: _("province one-window platform"),
    "national_window": lambda: _("national platform"),
    "bank": lambda: _("bank branch"),
    "app": lambda: _("mobile app (App or mini program)"),
    "self_service_terminal": lambda: _("self-service terminal"),
    "developer": lambda: _("real-estate developer"),
    "agency": lambda: _("real-estate agency"),
    "other": lambda: _("other channel"),
    # an inbound client's channel (web.config_schema.CHANNELS) besides those
    "county": lambda: _("county one-window platform"),
    "province": lambda: _("province one-window platform"),
    "national": lambda: _("national platform"),
    "department": lambda: _("government department"),
    "legacy": lambda: _("registration system"),
    "internal": lambda: _("internal network"),
    "hub": lambda: _("peer hub (province or county)"),
}

KINDS = {"type": REGISTRATION_TYPES, "channel": CHANNELS}


def names(kind: str, codes: Iterable[str]) -> dict[str, str]:
    """The names of ``codes`` of ``kind`` (``type`` or ``channel``) in the current
    language; a code without a name is left out (the page shows the code alone)."""
    known = KINDS[kind]
    return {code: known[code]() for code in codes if code in known}
