"""What the domain package adds to the hub: the ``tenant:`` config section (a
GB/T 2260 division code in the shipped snapshot). Named in the
``bdchub.parts`` entry-point group (see ``core.registry``)."""

from __future__ import annotations

from typing import Any

from bdchub.core.config import Checker, register_section
from bdchub.core.i18n import _

TENANT = {"type": "string", "pattern": r"^\d{6}$",
          "description": "the county's 6-digit GB/T 2260 division code"}


def check_tenant(checker: Checker, code: Any) -> None:
    if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
        return  # the schema has already said what is wrong
    from . import divisions

    if divisions.lookup(code) is None:
        checker.add(("tenant",), _("'{code}' is not a GB/T 2260 division code in the shipped "
                                   "snapshot ({snapshot})", code=code, snapshot=divisions.SNAPSHOT))


register_section("tenant", TENANT, required=True, check=check_tenant)
