"""What a SOAP service's WSDL offers, read without the network, for ``hub check``.

A route, a poller or the reconciler calls a SOAP connector by operation name
with a payload of parameters; zeep would refuse a wrong name or parameter
only at the first call, in production. ``hub check`` reads the WSDL instead
and checks every call before anything starts::

    check = WsdlCheck(SoapConnector("legacy", block, base_dir=config_folder))
    check.call("SubmitAplication", ["YWH"])   # -> [CallProblem(("operation",), "… did you mean …")]
    check.block()                             # the block's own: WSDL, port, profile, probe
    check.notice()                            # why its calls were not checked, or against what

Where the WSDL comes from, and never from the network:

- a file (relative to the config): read as it is now;
- an http(s) URL: the copy cached in the data folder (``wsdl-cache.db``, a
  ``zeep.cache.SqliteCache`` keyed by URL) when a connector last loaded it
  (``hub check --ping``, ``hub run``: ``remember``). Without a copy the
  calls are not checked and ``notice`` says so; that is no error, the
  service may simply be out of reach of the machine running the check.

The WSDL is parsed with the connector's own hardened zeep settings (DTDs and
entities refused, no huge trees) and the same choice of service and port, so
the check reads what the connector would. A WSDL that cannot be read, or a
service or port it does not have, is a problem of the block; a WSDL only
reachable over the network is none.

``operation_parts(wsdl, operation)`` gives an operation's parameter names and
answer element names, for other parts that map onto a vendor's operations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from zeep import Settings, xsd
from zeep import exceptions as zx
from zeep.cache import SqliteCache
from zeep.transports import Transport
from zeep.wsdl import Document

from bdchub.core.datadir import data_dir
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.safexml import declares_dtd
from bdchub.core.suggest import did_you_mean

from .registry import CallProblem

log = logging.getLogger("bdchub.connectors.wsdl")

#: The cache of remote WSDL documents, in the hub's data folder.
CACHE_FILE = "wsdl-cache.db"
_REMOTE = ("http", "https")
#: Parsed documents kept per process; a check reads each WSDL once however many calls it has.
_MEMO_SIZE = 32
_memo: dict[tuple[Any, ...], Any] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class Operation:
    """One operation of a port: the names its input takes and its answer carries."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    open_input: bool = False  # an xsd:any in the input: any name may go


class NotCached(Exception):  # noqa: N818 - a condition of the check, not an error
    """A remote document the cache does not hold."""


def is_remote(location: str) -> bool:
    return urlsplit(location).scheme in _REMOTE


def cache_file(base_dir: str | Path | None) -> Path:
    """Where the WSDLs of the config in ``base_dir`` are cached (its data folder)."""
    return data_dir({"__dir__": str(base_dir)} if base_dir is not None else {}) / CACHE_FILE


def remember(documents: Mapping[str, bytes], base_dir: str | Path | None) -> None:
    """Keep the documents a connector fetched by URL (its WSDL, its imports) for
    later checks, in the data folder of the config in ``base_dir``.

    A cache that cannot be written costs the check its copy, never the
    connector its WSDL: it is logged and left. A connector of no config file
    (``base_dir`` None: built in code) has no data folder and keeps nothing."""
    remote = {url: content for url, content in documents.items() if is_remote(url)}
    if not remote or base_dir is None:
        return
    path = cache_file(base_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = SqliteCache(path=str(path), timeout=None)
        for url, content in remote.items():
            cache.add(url, content)
    except Exception as exc:  # noqa: BLE001 - sqlite3 and OS errors alike
        log.warning(_("the WSDL documents fetched from {url} could not be cached in {path}: "
                      "{error}", url=next(iter(remote)), path=path, error=exc))
        return
    with _memo_lock:
        _memo.clear()


# -- reading ---------------------------------------------------------------------

def hardened_settings(strict: bool = True) -> Any:
    """zeep settings of a WSDL being loaded, as ``SoapConnector`` loads one: DTDs,
    entities and huge trees refused; imports left to the transport's rules."""
    return Settings(strict=strict, forbid_dtd=True, forbid_entities=True,
                    forbid_external=False, xml_huge_tree=False)


class _Offline(Transport):
    """Files from disk, URLs from the cache only: a check never goes to the network."""

    def load(self, url: str) -> bytes:
        if is_remote(url):
            content = self.cache.get(url) if self.cache is not None else None
            if content is None:
                raise NotCached(url)
        else:
            path = url[len("file://"):] if url.startswith("file://") else url
            content = Path(path).expanduser().read_bytes()
        if declares_dtd(bytes(content)):
            raise zx.DTDForbidden("WSDL/XSD document", url, None)
        return bytes(content)


def _offline_transport(cache_path: Path | None) -> _Offline:
    cache = None
    if cache_path is not None and cache_path.is_file():
        try:
            cache = SqliteCache(path=str(cache_path), timeout=None)
        except Exception as exc:  # noqa: BLE001 - sqlite3 errors of a damaged file
            # A damaged cache is as good as none: remote documents are then not at hand.
            log.warning(_("the WSDL cache {path} cannot be read: {error}", path=cache_path,
                          error=exc))
    return _Offline(cache=cache)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """What changes when a file would read differently; None: no such file."""
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat is not None else None


def load_document(location: str, *, settings: Any = None,
                  cache_path: Path | None = None) -> Any:
    """The zeep ``Document`` of ``location`` (a file, or a URL read from the cache).

    Raises ``NotCached`` for a URL (or a file's remote import) the cache does
    not hold, ``FileNotFoundError`` for a missing file, and zeep's or lxml's
    errors for a document that cannot be read."""
    settings = settings or hardened_settings()
    cached = _stamp(cache_path)
    if is_remote(location) and cached is None:
        raise NotCached(location)
    own = None if is_remote(location) else _stamp(Path(location))
    key = (location, settings.strict, str(cache_path), own, cached)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    document = Document(location, _offline_transport(cache_path), settings=settings)
    with _memo_lock:
        if len(_memo) >= _MEMO_SIZE:
            del _memo[next(iter(_memo))]
        _memo[key] = document
    return document


def operations(binding: Any) -> dict[str, Operation]:
    """The operations of a zeep binding, by name."""
    found = {}
    for name, operation in binding._operations.items():
        inputs, open_input = _names(getattr(operation, "input", None))
        outputs, _open = _names(getattr(operation, "output", None))
        found[name] = Operation(name, inputs, outputs, open_input)
    return found


def _names(message: Any) -> tuple[tuple[str, ...], bool]:
    """The child element and attribute names of a message's body, and whether
    the body takes anything (an xsd:any, or a body that is not a structure)."""
    body = getattr(message, "body", None)
    if body is None:
        return (), False
    kind = getattr(body, "type", None)
    if not isinstance(kind, xsd.ComplexType):
        return (), True
    names, open_ = [], False
    for name, element in kind.elements:
        if isinstance(element, xsd.Any):
            open_ = True
        else:
            names.append(name)
    for name, attribute in kind.attributes:
        if isinstance(attribute, xsd.AnyAttribute):
            open_ = True
        else:
            names.append(name)
    return tuple(names), open_


def _first_port(document: Any) -> Any:
    for service in document.services.values():
        for port in service.ports.values():
            return port.binding
    raise ConfigError(_("the WSDL defines no service"))


def operation_parts(wsdl: str | Path, operation: str, *, base_dir: str | Path | None = None,
                    connector: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(parameter names, answer element names)`` of ``operation`` in the first
    port of ``wsdl`` (a file, relative to ``base_dir``, or a URL read from the
    cache of ``base_dir``'s data folder). Raises ``ConfigError`` for an operation
    the WSDL does not have (with "did you mean"; ``connector`` names it) and
    ``NotCached`` for a URL never loaded. ``WsdlCheck.parts`` answers the same
    for a connector block, on the port the connector would use."""
    location = str(wsdl)
    if not is_remote(location) and base_dir is not None and not Path(location).is_absolute():
        location = str(Path(base_dir) / location)
    found = operations(_first_port(load_document(location, cache_path=cache_file(base_dir))))
    if operation not in found:
        raise ConfigError(_no_operation(connector or Path(urlsplit(location).path).name,
                                        operation, found))
    return found[operation].inputs, found[operation].outputs


def _no_operation(connector: str, operation: str, known: Iterable[str]) -> str:
    names = sorted(known)
    return _("connector '{connector}' has no operation '{op}' in its WSDL{hint}; it has: {ops}",
             connector=connector, op=operation, hint=did_you_mean(operation, names),
             ops=", ".join(names) or "-")


def _no_parameter(connector: str, op: Operation, key: str) -> str:
    return _("operation '{op}' of connector '{connector}' takes no parameter '{key}'{hint}; "
             "its parameters: {params}", op=op.name, connector=connector, key=key,
             hint=did_you_mean(key, op.inputs), params=", ".join(op.inputs) or "-")


# -- the check of one connector block ---------------------------------------------------

class WsdlCheck:
    """``hub check`` of one SOAP connector (the object ``SoapConnector.config_check``
    gives ``connectors.registry``). ``connector`` is a ``SoapConnector`` of the
    block, never opened: its location, settings and port choice are the ones
    it would use."""

    def __init__(self, connector: Any):
        self.connector = connector
        self.name = connector.name
        self.config = connector.config
        self._state: tuple[str, Any] | None = None

    # What the WSDL offers: ("ok", {name: Operation}), ("problems", [CallProblem]),
    # ("unavailable", location).
    def _read(self) -> tuple[str, Any]:
        if self._state is None:
            self._state = self._load()
        return self._state

    def _load(self) -> tuple[str, Any]:
        connector = self.connector
        wsdl = self.config.get("wsdl")
        if not isinstance(wsdl, str):
            return "unavailable", ""
        try:
            location = connector.wsdl_location()
        except ConfigError as exc:  # a file that is not there
            return "problems", [CallProblem(("wsdl",), str(exc))]
        try:
            document = load_document(location, settings=connector._settings(loading=True),
                                     cache_path=cache_file(connector.base_dir))
        except NotCached:
            return "unavailable", location
        except (zx.DTDForbidden, zx.EntitiesForbidden, zx.ExternalReferenceForbidden) as exc:
            return "problems", [CallProblem(("wsdl",), _(
                "connector '{name}': refused unsafe XML in the WSDL ({kind}); nothing was "
                "expanded", name=self.name, kind=type(exc).__name__))]
        except Exception as exc:  # noqa: BLE001 - zeep, lxml and OS errors of a bad document
            if is_remote(location):
                # The cached copy is the problem, not the config: read it anew with --ping.
                log.warning(_("the cached copy of the WSDL at {url} cannot be read: {error}",
                              url=location, error=exc))
                return "unavailable", location
            return "problems", [CallProblem(("wsdl",), _(
                "connector '{name}': the WSDL {path} cannot be read: {error}",
                name=self.name, path=location, error=str(exc).splitlines()[0][:300]
                if str(exc) else type(exc).__name__))]
        try:
            service, port = connector._select(SimpleNamespace(wsdl=document))
        except ConfigError as exc:
            return "problems", [CallProblem((self._selection_key(document),), str(exc))]
        return "ok", operations(document.services[service].ports[port].binding)

    def _selection_key(self, document: Any) -> str:
        """The key to blame when no port of the WSDL fits the block."""
        service = self.config.get("service")
        if not document.services:
            return "wsdl"
        if service and service not in document.services:
            return "service"
        return "port" if self.config.get("port") else "soap_version"

    def _profile(self) -> Mapping[str, Any]:
        """The block's ``operations:``: the county's names of vendor operations."""
        declared = self.config.get("operations")
        return declared if isinstance(declared, Mapping) else {}

    def vendor_operations(self) -> list[str] | None:
        """The WSDL's operations (of the connector's port), or None when it cannot
        be read offline."""
        state, found = self._read()
        return sorted(found) if state == "ok" else None

    def parts(self, operation: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """``(parameter names, answer element names)`` of the vendor operation
        ``operation``, or None when the WSDL cannot be read offline or lacks it."""
        state, found = self._read()
        if state != "ok" or operation not in found:
            return None
        return found[operation].inputs, found[operation].outputs

    def call(self, operation: str, payload_keys: Iterable[str] = ()) -> list[CallProblem]:
        """Problems of calling ``operation`` (the WSDL's, or a name of the block's
        profile) with a payload of ``payload_keys`` as the service receives them,
        at paths below the call: ``operation``, ``payload.KEY``. A profile that maps
        the payload makes a caller's keys its own words: ``connectors.profile.
        VendorCheck`` leaves those out and asks here about the mapping's keys."""
        state, found = self._read()
        if state != "ok":
            return []
        declared = operation in self._profile()
        spec = self._profile().get(operation)
        spec = spec if isinstance(spec, Mapping) else {}
        vendor = spec.get("operation", operation)
        if vendor not in found:
            if declared:
                return []  # blamed where the profile names it (``block``)
            return [CallProblem(("operation",), _no_operation(
                self.name, operation, {*found, *self._profile()}))]
        return self._parameters(found[vendor], payload_keys, ("payload",))

    def _parameters(self, op: Operation, keys: Iterable[Any],
                    at: tuple[str | int, ...]) -> list[CallProblem]:
        if op.open_input:
            return []
        problems = []
        for key in keys:
            # A dotted target nests: the parameter is its first part.
            head = str(key).split(".", 1)[0]
            if head not in op.inputs:
                problems.append(CallProblem((*at, key), _no_parameter(self.name, op, head),
                                            key=True))
        return problems

    def block(self) -> list[CallProblem]:
        """The block's own problems: its WSDL, service and port, the vendor
        operations of its profile, and the probe's operation."""
        state, found = self._read()
        if state == "problems":
            return list(found)
        if state != "ok":
            return []
        problems = []
        for name, spec in self._profile().items():
            if not isinstance(spec, Mapping):
                continue
            vendor = spec.get("operation", name)
            if vendor not in found:
                where = ("operations", name, "operation") if "operation" in spec \
                    else ("operations", name)
                problems.append(CallProblem(where, _no_operation(self.name, vendor, found),
                                            key="operation" not in spec))
        probe = self.config.get("probe")
        if isinstance(probe, Mapping) and isinstance(probe.get("operation"), str):
            payload = probe.get("payload")
            spec = self._profile().get(probe["operation"])
            mapped = isinstance(spec, Mapping) and spec.get("payload") is not None
            # Through a profile's mapping the probe's payload is in the county's words.
            keys = list(payload) if isinstance(payload, Mapping) and not mapped else []
            for problem in self.call(probe["operation"], keys):
                problems.append(problem._replace(path=("probe", *problem.path)))
        return problems

    def notice(self) -> str | None:
        """For ``hub check``'s output: calls not checked for want of the WSDL, or
        checked against a cached copy."""
        state, _found = self._read()
        wsdl = self.config.get("wsdl")
        remote = isinstance(wsdl, str) and is_remote(wsdl)
        if state == "unavailable" and remote:
            return _("connector {name}: operations not checked against the WSDL at {url}: it "
                     "has not been fetched yet (hub check --ping fetches it, hub run as well)",
                     name=self.name, url=wsdl)
        if state == "unavailable" and isinstance(wsdl, str):
            return _("connector {name}: operations not checked: the WSDL {path} imports "
                     "documents from the network that have not been fetched yet (hub check "
                     "--ping fetches them)", name=self.name, path=wsdl)
        if state == "ok" and remote:
            return _("connector {name}: operations checked against its WSDL as last fetched "
                     "(cached in {path}; hub check --ping fetches it anew)",
                     name=self.name, path=cache_file(self.connector.base_dir))
        return None


__all__ = ["CACHE_FILE", "NotCached", "Operation", "WsdlCheck", "cache_file",
           "hardened_settings", "load_document", "operation_parts", "operations", "remember"]
