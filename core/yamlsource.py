"""Safe YAML loading that remembers where every value came from.

The config loader needs file:line:column for every key and value, so errors
can point at the exact spot. PyYAML's node tree has the marks; this module
builds plain Python data from it with a side table of locations, refuses
duplicate keys (PyYAML silently keeps the last), and substitutes ``${VAR}`` /
``${VAR:default}`` from the environment in scalars. ``$${`` stays a literal.

Secrets may also come from files: ``${file:/run/secrets/x}`` is that file's
text, and an unset ``VAR`` with ``VAR_FILE=/path`` in the environment takes the
file's text (the convention of container secrets). One trailing newline is
stripped; a file that cannot be read is a problem at the value's file:line.
``Source.defaulted`` records the values that took a written ``:default``
rather than the environment or a file: the published demo values a running
hub must not keep for its secrets (``core.secrets``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .i18n import _

Path_ = tuple[str | int, ...]
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
#: ``${file:PATH}``: the name that reads a file rather than a variable.
FILE_REF = "file"
#: ``VAR_FILE=/path`` supplies an unset ``VAR``.
FILE_SUFFIX = "_FILE"


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass
class Source:
    """Parsed YAML data plus where each path's value (and key) stood."""

    file: str
    data: Any
    values: dict[Path_, Location]
    keys: dict[Path_, Location]
    #: path -> the variables whose written default the value took (not set in the
    #: environment, nor given as ``VAR_FILE``)
    defaulted: dict[Path_, tuple[str, ...]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> Location:
        """The closest known location of ``path`` (falls back to its parents)."""
        path = tuple(path)
        while True:
            table = self.keys if key and path in self.keys else self.values
            if path in table:
                return table[path]
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]


class _Builder:
    def __init__(self, file: str, loader: yaml.SafeLoader, environ: Mapping[str, str]):
        self.file = file
        self.loader = loader
        self.environ = environ
        self.values: dict[Path_, Location] = {}
        self.keys: dict[Path_, Location] = {}
        self.defaulted: dict[Path_, tuple[str, ...]] = {}
        self.problems: list[str] = []

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.values[path] = self.loc(node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            # Only plain data: a tag such as !!python/object must never build objects.
            raise yaml.constructor.ConstructorError(
                None, None, f"tag {node.tag} is not allowed", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self.problems.append(_("{loc}: {path}: keys must be plain text",
                                           loc=self.loc(key_node), path=dotted(path)))
                    continue
                key = str(key)
                if key in out:
                    first = self.keys[(*path, key)]
                    self.problems.append(_("{loc}: {path}: key '{key}' appears twice (first at line {line})",
                                           loc=self.loc(key_node), path=dotted((*path, key)),
                                           key=key, line=first.line))
                    continue
                self.keys[(*path, key)] = self.loc(key_node)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        value = node.value
        if "${" not in value:
            return self.loader.construct_object(node)
        substituted = self.substitute(value, node, path)
        if not node.style:  # plain: None from PyYAML's parser, "" from libyaml's
            # An unquoted ${PORT:8080} becomes the number 8080, as if written so.
            tag = self.loader.resolve(yaml.ScalarNode, substituted, (True, False))
            return self.loader.construct_object(
                yaml.ScalarNode(tag, substituted, node.start_mark, node.end_mark))
        return substituted

    def substitute(self, text: str, node: yaml.Node, path: Path_) -> str:
        defaulted: list[str] = []

        def repl(match: re.Match[str]) -> str:
            escaped, name, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            if name == FILE_REF and default is not None:
                return self.read_secret(default, node, path, None)
            if name in self.environ:
                if name + FILE_SUFFIX in self.environ:
                    self.problems.append(_(
                        "{loc}: {path}: both {name} and {name}_FILE are set; keep one",
                        loc=self.loc(node), path=dotted(path), name=name))
                return self.environ[name]
            if name + FILE_SUFFIX in self.environ:
                return self.read_secret(self.environ[name + FILE_SUFFIX], node, path,
                                        name + FILE_SUFFIX)
            if default is not None:
                defaulted.append(name)
                return default
            self.problems.append(_(
                "{loc}: {path}: environment variable {name} is not set; "
                "set it, or give a default as ${{{name}:default}}",
                loc=self.loc(node), path=dotted(path), name=name))
            return ""

        out = _VAR.sub(repl, text)
        if defaulted:
            self.defaulted[path] = tuple(defaulted)
        return out

    def read_secret(self, file: str, node: yaml.Node, path: Path_, variable: str | None) -> str:
        """The text of a secret's file, less one trailing newline (``echo`` adds it)."""
        try:
            text = Path(file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            error = exc.reason if isinstance(exc, UnicodeDecodeError) else (exc.strerror or exc)
            where = f"{variable}={file}" if variable else file
            self.problems.append(_("{loc}: {path}: cannot read the secret file {file}: {error}",
                                   loc=self.loc(node), path=dotted(path), file=where,
                                   error=error))
            return ""
        if text.endswith("\r\n"):
            return text[:-2]
        return text[:-1] if text.endswith("\n") else text


def load_yaml(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Source:
    """Parse one YAML file safely, with locations. Raises ConfigError."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(_("config file not found: {file}", file=file)) from exc
    except IsADirectoryError as exc:
        raise ConfigError(_("config path is a folder, not a file: {file}", file=file)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(_("{file}: not UTF-8 text ({error})", file=file, error=exc.reason)) from exc
    except OSError as exc:
        raise ConfigError(_("cannot read config file {file}: {error}", file=file,
                            error=exc.strerror)) from exc
    return parse_yaml(text, file, environ)


#: libyaml's parser where PyYAML was built with it: the same nodes and marks, about
#: ten times faster on the shipped config (start-up, ``hub check``, reload).
_LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


def parse_yaml(text: str, file: str = "<string>",
               environ: Mapping[str, str] | None = None) -> Source:
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        builder = _Builder(file, loader, os.environ if environ is None else environ)
        data = builder.build(root, ()) if root is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(_("{loc}: YAML syntax error: {problem}", loc=where,
                            problem=problem)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(_("{file}: YAML error: {error}", file=file, error=exc)) from exc
    finally:
        loader.dispose()
    if builder.problems:
        raise ConfigError(builder.problems)
    return Source(file, data, builder.values, builder.keys, builder.defaulted)
