"""Which config values are secrets, and which of them still hold a published demo value.

A part marks a key as a secret in its JSON Schema with ``"secret": true`` (an
annotation JSON Schema validators ignore), as ``inbound.clients.*.app_secret``
and the connectors' ``auth`` keys do::

    "app_secret": {"type": "string", "minLength": 1, "secret": True}

Every schema pass of the config checker (``core.config.Checker.schema``) walks
the schema beside the value it checks and collects the paths of the values
marked so (``secret_paths``), whatever part registered the schema. The YAML
loader records which values took the ``:default`` written in the file rather
than the environment or a file (``core.yamlsource.Source.defaulted``). A
secret that took its default is a published value: anyone who read
config.yaml knows it. ``core.config.load`` lists them under
``config["__demo_secrets__"]``, and a hub refuses to start with any
(``refuse``, from ``HubService.from_config`` and ``hub run``) unless its
caller says it runs the demo: ``hub demo`` and the tests that run the shipped
config against the sandbox pass ``demo_secrets=True``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from .errors import ConfigError
from .i18n import _
from .yamlsource import Path_, Source, dotted

#: The schema annotation that marks a secret.
SECRET = "secret"
#: Where ``core.config.load`` puts the secrets holding their demo value.
DEMO_SECRETS_KEY = "__demo_secrets__"


@dataclass(frozen=True)
class DemoSecret:
    """A secret that still holds the default written in the config file."""

    where: str            # file:line:column
    path: str             # dotted key path
    variables: tuple[str, ...]

    def __str__(self) -> str:
        return _("{where}: {path}: still the published demo value; set {variables} "
                 "(or {first}_FILE)", where=self.where, path=self.path,
                 variables=_(" or ").join(self.variables), first=self.variables[0])


def secret_paths(instance: Any, schema: Any, base: Path_ = ()) -> Iterator[Path_]:
    """The paths below ``base`` whose schema marks them ``"secret": true``.

    Follows ``properties``, ``patternProperties``, ``additionalProperties``,
    ``items``/``prefixItems``, ``allOf`` and local ``$ref``; of ``oneOf`` and
    ``anyOf`` only the branches ``instance`` is valid against (a connector's
    ``auth`` is one scheme's block), so a key is a secret where its scheme says so.
    """
    root = schema if isinstance(schema, Mapping) else {}
    if not _marks_a_secret(schema):
        return  # most parts' schemas (every step kind) have none: nothing to walk
    yield from _walk(instance, schema, tuple(base), root, 0)


#: id(schema) -> (schema, whether "secret": true appears anywhere in it). Schemas are
#: the parts' module-level constants: kept alive here, so an id is never reused.
_SECRET_MARKS: dict[int, tuple[Any, bool]] = {}


def _marks_a_secret(schema: Any) -> bool:
    found = _SECRET_MARKS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    marked = _anywhere(schema)
    if len(_SECRET_MARKS) < 10_000:  # schemas built on the fly are not kept forever
        _SECRET_MARKS[id(schema)] = (schema, marked)
    return marked


def _anywhere(node: Any) -> bool:
    if isinstance(node, Mapping):
        return node.get(SECRET) is True or any(_anywhere(v) for v in node.values())
    if isinstance(node, list | tuple):
        return any(_anywhere(v) for v in node)
    return False


def _walk(instance: Any, schema: Any, path: Path_, root: Mapping[str, Any],
          depth: int) -> Iterator[Path_]:
    if not isinstance(schema, Mapping) or depth > 64:
        return
    if schema.get(SECRET) is True:
        yield path
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        yield from _walk(instance, target, path, root, depth + 1)
    for sub in schema.get("allOf") or ():
        yield from _walk(instance, sub, path, root, depth + 1)
    for key in ("oneOf", "anyOf"):
        for sub in schema.get(key) or ():
            if _valid(instance, sub, root):
                yield from _walk(instance, sub, path, root, depth + 1)
    if isinstance(instance, Mapping):
        props = schema.get("properties") or {}
        patterns = schema.get("patternProperties") or {}
        extra = schema.get("additionalProperties")
        for name, value in instance.items():
            subs = [props[name]] if name in props else []
            subs += [s for p, s in patterns.items() if _matches(p, str(name))]
            if not subs and isinstance(extra, Mapping):
                subs = [extra]
            for sub in subs:
                yield from _walk(value, sub, (*path, name), root, depth + 1)
    elif isinstance(instance, Sequence) and not isinstance(instance, str | bytes):
        prefix = schema.get("prefixItems") or []
        items = schema.get("items")
        for i, value in enumerate(instance):
            sub = prefix[i] if i < len(prefix) else items
            yield from _walk(value, sub, (*path, i), root, depth + 1)


def _valid(instance: Any, schema: Any, root: Mapping[str, Any]) -> bool:
    if not isinstance(schema, Mapping):
        return False
    if "$defs" in root and "$defs" not in schema:
        schema = {**schema, "$defs": root["$defs"]}  # a branch's local $ref resolves
    try:
        return bool(jsonschema.Draft202012Validator(schema).is_valid(instance))
    except Exception:  # noqa: BLE001 - an unresolvable branch marks nothing
        return False


def _matches(pattern: str, name: str) -> bool:
    import re

    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def demo_secrets(source: Source, paths: Iterator[Path_] | set[Path_]) -> list[DemoSecret]:
    """Of the secrets at ``paths``, those that took their written default, in file order."""
    found = []
    for path in paths:
        variables = source.defaulted.get(tuple(path))
        if variables:
            found.append((source.where(path), DemoSecret(str(source.where(path)),
                                                          dotted(path), variables)))
    found.sort(key=lambda item: (item[0].line, item[0].column))
    return [secret for _loc, secret in found]


def refuse(config: Mapping[str, Any]) -> None:
    """Raise the one error a hub stops with (``ConfigError``, exit 2) when the loaded
    ``config`` still holds published demo secrets. A config built in code has none."""
    found = list(config.get(DEMO_SECRETS_KEY) or ())
    if not found:
        return
    lines = [_("{n} secrets of the configuration still hold the published demo values "
               "written in it; a hub that keeps them accepts requests anyone can sign. "
               "Set each variable (or VARIABLE_FILE with the path of a file holding the "
               "secret), or use hub demo to try the hub:", n=len(found))]
    lines += [f"  {secret}" for secret in found]
    raise ConfigError("\n".join(lines))
