"""Many tenants in one hub: the ``tenants:`` config section and what it changes
at run time (docs/tenants.md).

A hub of several counties lists each served GB/T 2260 code under ``tenants:``
with what differs for it; the top-level ``connectors:`` and ``routes:`` are the
shared defaults::

    tenants:
      "320684": {connectors: {legacy: {type: rest, …}}}          # its own system
      "320623": {params: {county: "320623"},
                 connectors: {legacy: {use: shared_djxt}},      # the shared one
                 routes: {progress: {from: …, steps: […]}}}      # its own route

A connector override is a full block (the tenant's own connector, built as
``legacy@320684``) or ``{use: NAME, params: {…}}`` (calls go to the shared
connector NAME with the tenant's ``params`` and the override's merged into the
payload). ``Tenancy.connector(tenant, name)`` is the engine's lookup at each
call. Tenant routes are compiled by ``routes.compiler`` (as ``NAME@CODE``),
which reads the blocks through ``blocks`` and ``connector_view``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bdchub.core.config import Checker
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean

SEPARATOR = "@"

_OVERRIDE = {"type": "object", "description": "a full connector block (with type), or use/params"}
_TENANT = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "description": "the county's registration centre"},
        "params": {"type": "object",
                   "description": "merged into the payload of this tenant's use: overrides"},
        "connectors": {"type": "object", "additionalProperties": _OVERRIDE,
                       "description": "shared connector name -> this tenant's override"},
        "routes": {"type": "object", "additionalProperties": {"type": "object"},
                   "description": "routes replacing the shared ones of the same name, "
                                  "or this tenant's own"},
    },
}
#: The ``tenants:`` section (registered by ``routes.parts``).
SCHEMA: dict[str, Any] = {"type": "object", "minProperties": 1, "additionalProperties": _TENANT,
                          "description": "the division codes this hub serves, each with "
                                         "what differs from the shared defaults"}
_USE = {"type": "object", "additionalProperties": False,
        "properties": {"use": {"type": "string", "minLength": 1,
                               "description": "the shared connector this tenant's calls go to"},
                       "params": {"type": "object",
                                  "description": "merged into each call's payload"}}}


def runtime_name(name: str, tenant: str) -> str:
    """A tenant's own connector or route among the shared ones: ``legacy@320684``."""
    return f"{name}{SEPARATOR}{tenant}"


def blocks(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The well-formed tenant blocks of ``config`` by code (none for a one-tenant hub)."""
    found = config.get("tenants")
    if not isinstance(found, Mapping):
        return {}
    return {str(code): block for code, block in found.items() if isinstance(block, Mapping)}


def served(config: Mapping[str, Any]) -> frozenset[str]:
    """The codes a hub of several tenants serves: those of ``tenants:`` and its own
    (a province's departments send under the province's code, before dispatch).
    Empty for a one-tenant hub, which takes what its clients may send."""
    codes = frozenset(blocks(config))
    own = config.get("tenant")
    return codes | {str(own)} if codes and own else codes


def _overrides(block: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    found = block.get("connectors")
    if isinstance(found, Mapping):
        for name, override in found.items():
            if isinstance(override, Mapping):
                yield str(name), override


def connector_view(connectors: Mapping[str, Any], block: Mapping[str, Any]) -> dict[str, Any]:
    """The connectors as one tenant's routes see them, to check their calls against:
    the shared blocks with the tenant's overrides in place (an override never adds a
    name). Built connectors (``hub run``) are kept as they are: only names count."""
    view = dict(connectors)
    for name, override in _overrides(block):
        if not isinstance(view.get(name), Mapping):
            continue
        if "type" in override:
            view[name] = override
        else:
            used = connectors.get(str(override.get("use") or name))
            if isinstance(used, Mapping):
                view[name] = used
    return view


# -- run time -----------------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """Where one call of a shared connector name goes for one tenant."""

    connector: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def payload(self, payload: Any) -> Any:
        """``payload`` with the tenant's parameters merged in (as the dispatch step
        merges a shared system's county)."""
        if not self.params:
            return payload
        return {**(payload if isinstance(payload, Mapping) else {"value": payload}),
                **self.params}


class Tenancy:
    """The tenants a hub serves and where each one's calls go."""

    def __init__(self, served: Iterable[str] = (),
                 uses: Mapping[tuple[str, str], Use] | None = None):
        #: ``served(config)``; empty for a one-tenant hub (it serves any it is sent)
        self.served = frozenset(served)
        self._uses = dict(uses or {})

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Tenancy:
        uses: dict[tuple[str, str], Use] = {}
        found = blocks(config)
        for code, block in found.items():
            common = block.get("params") if isinstance(block.get("params"), Mapping) else {}
            for name, override in _overrides(block):
                if "type" in override:
                    uses[(code, name)] = Use(runtime_name(name, code))
                else:
                    own = override.get("params") or {}
                    uses[(code, name)] = Use(str(override.get("use") or name),
                                             {**common, **own})
        return cls(served(config), uses)

    def connector(self, tenant: str, name: str) -> Use:
        """Where a call of connector ``name`` goes for a message of ``tenant``."""
        return self._uses.get((tenant, name)) or Use(name)


def own_connectors(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The tenants' own connector blocks by their run-time names, to build."""
    return {runtime_name(name, code): override
            for code, block in blocks(config).items()
            for name, override in _overrides(block) if "type" in override}


# -- hub check ----------------------------------------------------------------------


def check_section(checker: Checker, tenants: Any) -> None:
    """Each tenant block (``core.config.Section.check``): its code, its connector
    overrides; and the inbound clients' exact codes against the served ones. The
    tenants' routes are compiled with the shared ones (``routes.compiler``)."""
    from bdchub.connectors.registry import check_block, operations_of

    if not isinstance(tenants, Mapping):
        return
    shared = checker.config.get("connectors")
    shared = shared if isinstance(shared, Mapping) else {}
    for code, block in tenants.items():
        path = ("tenants", code)
        _check_code(checker, str(code), path)
        if not isinstance(block, Mapping):
            continue
        for name, override in _overrides(block):
            here = (*path, "connectors", name)
            if name not in shared:
                checker.add(here, _("'{name}' is no shared connector: a tenant overrides "
                                    "one of connectors: ({known}){hint}", name=name,
                                    known=", ".join(shared) or "-",
                                    hint=did_you_mean(name, shared)), key=True)
                continue
            if "type" in override:
                check_block(checker, runtime_name(name, str(code)), override, here)
                mine = operations_of(override)
            elif checker.schema(override, _USE, here):
                used = str(override.get("use") or name)
                if used not in shared:
                    checker.add((*here, "use"), _("no connector named '{name}' under "
                                                  "connectors:{hint}", name=used,
                                                  hint=did_you_mean(used, shared)))
                    continue
                mine = operations_of(shared[used])
            else:
                continue
            _check_operations(checker, here, name, mine, _not_replaced(checker.config, block))
    _check_clients(checker, served(checker.config) | {str(c) for c in tenants
                                                      if len(str(c)) == 6 and str(c).isdigit()})


def _check_code(checker: Checker, code: str, path: tuple[str, ...]) -> None:
    from bdchub.schemas import divisions

    if len(code) != 6 or not code.isdigit():
        checker.add(path, _("'{code}' is not a tenant: a tenant is a 6-digit GB/T 2260 "
                            "division code, quoted", code=code), key=True)
    elif divisions.lookup(code) is None:
        near = [c for c in divisions.codes(status=None) if c[:4] == code[:4]]
        checker.add(path, _("'{code}' is not a GB/T 2260 division code in the shipped "
                            "snapshot ({snapshot}){hint}", code=code,
                            snapshot=divisions.SNAPSHOT, hint=did_you_mean(code, near)),
                    key=True)


def _not_replaced(config: Mapping[str, Any], block: Mapping[str, Any]) -> dict[str, Any]:
    """The shared routes a tenant runs as they are (those it does not replace)."""
    routes = config.get("routes")
    own = block.get("routes")
    own = own if isinstance(own, Mapping) else {}
    return {name: spec for name, spec in (routes.items() if isinstance(routes, Mapping) else ())
            if name not in own}


def _calls(spec: Any) -> Iterator[tuple[str, str]]:
    """(connector, operation) of every call written in a route, at any depth."""
    if isinstance(spec, Mapping):
        connector, operation = spec.get("connector"), spec.get("operation")
        if isinstance(connector, str) and isinstance(operation, str):
            yield connector, operation
        for value in spec.values():
            yield from _calls(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _calls(item)


def _check_operations(checker: Checker, path: tuple[Any, ...], name: str, operations: list[str],
                      routes: Mapping[str, Any]) -> None:
    """An override must offer what the shared routes this tenant runs call of it
    (only where it declares its operations: a WSDL's are checked when it is called)."""
    if not operations:
        return
    for route, spec in routes.items():
        for connector, operation in _calls(spec):
            if connector == name and operation not in operations:
                checker.add(path, _("route '{route}' calls operation '{op}' of connector "
                                    "'{name}', which this tenant's override does not have{hint}",
                                    route=route, op=operation, name=name,
                                    hint=did_you_mean(operation, operations)))


def _check_clients(checker: Checker, known: frozenset[str]) -> None:
    """An inbound client naming an exact code this hub does not serve (a typo, or a
    county left out of ``tenants:``) would be refused on every request."""
    inbound = checker.config.get("inbound")
    clients = inbound.get("clients") if isinstance(inbound, Mapping) else None
    for name, client in (clients.items() if isinstance(clients, Mapping) else ()):
        codes = client.get("tenants") if isinstance(client, Mapping) else None
        for i, code in enumerate(codes if isinstance(codes, list) else ()):
            if isinstance(code, str) and "*" not in code and code not in known:
                checker.add(("inbound", "clients", name, "tenants", i),
                            _("tenant '{code}' is not one this hub serves (tenants:){hint}",
                              code=code, hint=did_you_mean(code, sorted(known))))

