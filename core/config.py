"""Load and check a hub configuration (config.yaml) before anything starts.

The whole file is checked in one pass and every problem is reported, each as
``file:line:column: key.path: what is wrong (did you mean …?)``:

1. YAML syntax, duplicate keys and ``${VAR}`` substitution (core.yamlsource);
2. the top-level shape: each key is a config *section* that some part of the
   hub registered (``SECTIONS``), with its JSON Schema;
3. each section's own cross-checks (``Section.check``): connector blocks
   against their type's schema, routes through the route compiler, pollers
   against their connectors, and so on.

This module knows no section above ``core``: the parts register theirs (see
``core.registry``), so a new connector type, step kind or section needs no
change here. ``load(path)`` returns the plain, validated dict; ``check(path)``
returns a ``CheckReport`` for ``hub check``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .errors import ConfigError
from .i18n import _
from .registry import Registry, resolve
from .secrets import DEMO_SECRETS_KEY, DemoSecret, demo_secrets, secret_paths
from .suggest import did_you_mean
from .violations import explain
from .yamlsource import Path_, Source, dotted, load_yaml, parse_yaml

DEFAULT_PATH = "config.yaml"


@dataclass(frozen=True)
class Section:
    """One top-level block of config.yaml, registered by the part that reads it.

    ``schema`` is its JSON Schema, or ``"module:NAME"`` of one (imported when a
    config is checked, so registering costs nothing). ``check(checker,
    block)`` (or ``"module:function"``) runs after the schema pass, for what a
    schema cannot say: references to other sections, compiled expressions. It
    adds problems with ``checker.add`` and must not raise on malformed input,
    which the schema pass has already reported.
    """

    name: str
    schema: Mapping[str, Any] | str
    required: bool = False
    check: Callable[[Checker, Any], None] | str | None = None

    def json_schema(self) -> Mapping[str, Any]:
        return resolve(self.schema) if isinstance(self.schema, str) else self.schema  # type: ignore[return-value]

    def checker(self) -> Callable[[Checker, Any], None] | None:
        return resolve(self.check) if isinstance(self.check, str) else self.check  # type: ignore[return-value]


SECTIONS: Registry[Section] = Registry(
    "config section",
    unknown=lambda name, hint, known: _("unknown key '{key}'{hint}; allowed keys: {known}",
                                        key=name, hint=hint, known=known))


def register_section(name: str, schema: Mapping[str, Any] | str, *, required: bool = False,
                     check: Callable[[Checker, Any], None] | str | None = None) -> None:
    """Register the top-level section ``name`` (see ``Section``)."""
    SECTIONS.register(name, Section(name, schema, required, check))


def top_schema() -> dict[str, Any]:
    """The whole file's schema, assembled from the registered sections."""
    sections = SECTIONS.items()
    return {"type": "object", "additionalProperties": False,
            "required": [name for name, s in sections if s.required],
            "properties": {name: dict(s.json_schema()) for name, s in sections}}


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "nothing"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


@dataclass
class Problem:
    path: Path_
    message: str
    key: bool = False  # point at the key rather than the value


@dataclass
class CheckReport:
    file: str
    config: dict[str, Any]
    connectors: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    routes: list[tuple[str, int]] = field(default_factory=list)      # (name, steps)
    #: secrets still holding the default written in the file (``core.secrets``)
    demo_secrets: list[DemoSecret] = field(default_factory=list)


class Checker:
    """Collects every problem of one config, each at its path.

    Parts' section checks receive it: ``add(path, message)`` records a
    problem, ``schema(value, schema, path)`` records a JSON Schema's
    violations as sentences, ``config`` is the whole file and ``report`` what
    ``hub check`` prints. Without a ``source`` (a config built in code) the
    problems name only their key paths.
    """

    def __init__(self, data: Any, source: Source | None = None):
        self.source = source
        self.data = self.config = data
        self.problems: list[Problem] = []
        #: paths of the values a schema marks ``"secret": true`` (``core.secrets``)
        self.secrets: set[Path_] = set()
        self.report = CheckReport(source.file if source else "<config>",
                                  data if isinstance(data, dict) else {})

    def add(self, path: Path_, message: str, key: bool = False) -> None:
        self.problems.append(Problem(tuple(path), message, key))

    # -- JSON Schema errors into sentences ---------------------------------
    def schema(self, instance: Any, schema: Mapping[str, Any], base: Path_) -> bool:
        """Record ``instance``'s violations of ``schema``; True when there are none."""
        validator = jsonschema.Draft202012Validator(schema)
        before = len(self.problems)
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
            self.explain(error, base)
        self.secrets.update(secret_paths(instance, schema, base))
        return len(self.problems) == before

    def explain(self, error: ValidationError, base: Path_) -> None:
        path = (*base, *error.absolute_path)
        kw, value, spec = error.validator, error.instance, error.validator_value
        if kw in ("oneOf", "anyOf") and error.context:
            # Prefer the branch whose type matches what the user wrote.
            same_kind = [e for e in error.context
                         if e.validator != "type" and not any(
                             c.validator == "type" and c.relative_path == e.relative_path
                             for c in error.context if c.schema_path[0] == e.schema_path[0])]
            pick = best_match(same_kind or error.context)
            if pick is not None and pick is not error:
                return self.explain(pick, base)
        if kw == "additionalProperties" and isinstance(value, dict):
            known = list(error.schema.get("properties", {}))
            for extra in sorted(set(value) - set(known)):
                if error.schema.get("patternProperties"):
                    continue
                self.add((*path, extra), _("unknown key '{key}'{hint}; allowed keys: {known}",
                                           key=extra, hint=did_you_mean(extra, known),
                                           known=", ".join(known) or "-"), key=True)
            return None
        if kw == "required":
            missing = [k for k in spec if isinstance(value, dict) and k not in value]
            for name in missing:
                self.add(path, _("missing required key '{key}'", key=name))
            return None
        if kw == "type":
            want = spec if isinstance(spec, list) else [spec]
            self.add(path, _("expected {expected}, found {found} {value!r}",
                             expected=_(" or ").join(_(_TYPE_NAMES.get(w, w)) for w in want),
                             found=_(_TYPE_NAMES.get(_kind(value), _kind(value))), value=value))
            return None
        if kw == "enum":
            self.add(path, _("'{value}' is not one of: {allowed}{hint}", value=value,
                             allowed=", ".join(map(str, spec)),
                             hint=did_you_mean(str(value), map(str, spec))))
            return None
        if kw == "pattern":
            desc = error.schema.get("description", "")
            self.add(path, _("'{value}' does not have the expected form{desc}",
                             value=value, desc=(" (" + desc + ")") if desc else ""))
            return None
        if kw == "propertyNames":
            self.add(path, _("key '{key}' is not allowed here: {error}",
                             key=value, error=error.message), key=True)
            return None
        # The remaining keywords read the same in config and in messages.
        self.add(path, explain(error))
        return None

    # -- the whole file ----------------------------------------------------
    # -- the whole file ----------------------------------------------------
    def run(self) -> CheckReport:
        data = self.data
        if not isinstance(data, dict):
            self.add((), _("the config must be a mapping with tenant, connectors and routes"))
            return self.report
        self.schema(data, top_schema(), ())
        for name, section in SECTIONS.items():
            check = section.checker()
            if check is not None and name in data:
                check(self, data[name])
        return self.report

    def format(self) -> list[str]:
        lines = []
        for p in self.problems:
            if self.source is not None:
                loc = f"{self.source.where(p.path, key=p.key)}: "
            else:
                loc = ""
            lines.append(f"{loc}{dotted(p.path)}: {p.message}")
        return sorted(dict.fromkeys(lines), key=_line_order)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.format())


def _line_order(line: str) -> tuple[int, int, str]:
    parts = line.split(":", 3)
    try:
        return int(parts[1]), int(parts[2]), line
    except (IndexError, ValueError):
        return 0, 0, line


def check_source(source: Source) -> CheckReport:
    checker = Checker(source.data, source)
    report = checker.run()
    checker.raise_if_any()
    report.demo_secrets = demo_secrets(source, checker.secrets)
    return report


def check(path: str | os.PathLike[str] = DEFAULT_PATH,
          environ: Mapping[str, str] | None = None) -> CheckReport:
    """Check a config file completely; raise ConfigError listing every problem."""
    return check_source(load_yaml(path, environ))


def check_text(text: str, file: str = "<string>",
               environ: Mapping[str, str] | None = None) -> CheckReport:
    return check_source(parse_yaml(text, file, environ))


def load(path: str | os.PathLike[str] = DEFAULT_PATH,
         environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The validated config as a plain dict, with ``__file__`` and ``__dir__`` added
    so relative paths (WSDL files, data folders) resolve against the config's folder,
    and ``__demo_secrets__``: the secrets that still hold the published default
    written in the file (``core.secrets``; a starting hub refuses them)."""
    report = check(path, environ)
    config = dict(report.config)
    config["__file__"] = str(Path(path).resolve())
    config["__dir__"] = str(Path(path).resolve().parent)
    config[DEMO_SECRETS_KEY] = list(report.demo_secrets)
    return config


# -- the sections core itself reads (the tenant is the schemas' part:
# GB/T 2260 division codes are domain knowledge) ---------------------------------

register_section("name", {"type": "string", "description": "the registration centre's name"})
register_section("level", {"enum": ["county", "city", "province", "national"]})
register_section("lang", {"enum": ["zh_CN", "en"]})
register_section("broker", "bdchub.core.broker:SCHEMA")
register_section("store", "bdchub.core.store:SCHEMA")
register_section("masking", "bdchub.core.masking:SCHEMA")
register_section("logging", "bdchub.core.logs:SCHEMA")
register_section("audit", "bdchub.core.audit:SCHEMA")
register_section("tracing", "bdchub.core.tracing:SCHEMA",
                 check="bdchub.core.tracing:check_section")
