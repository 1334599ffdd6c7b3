"""SOAP endpoints (zeep): legacy registration systems, court and tax web services.

::

    legacy:
      type: soap
      wsdl: wsdl/legacy.wsdl            # file (relative to config.yaml) or http(s) URL
      service: RegistrationService      # default: the first service
      port: RegistrationSoap12          # or soap_version: "1.2" to pick the port by binding
      address: https://10.1.2.3/ws      # optional: override the WSDL's soap:address
      wsse: {username: hub, password: s3cret, use_digest: true, timestamp: true}
      operations:                       # the profile (connectors.profile); any WSDL
        check_contract:                 # operation works by its own name too
          operation: CheckContract
          payload: {ContractNo: contract_no}
          reply: {status: Contract.Status}
          success: {path: Result, ok: ["1"], message_path: Message}
      probe: {operation: Ping, payload: {}}
      idempotency: {header: "{urn:vendor:bdc}IdempotencyKey"}   # see below

Idempotency: every call of a route carries a key that is the same on each
attempt, redelivery and dead-letter replay of that call
(``CallContext.idempotency_key``: ``{origin id}:{route}:{step}``). SOAP has no
standard header for it, so ``idempotency`` says where the service reads it:
``header: "{namespace}Name"`` adds a SOAP header element of that name whose
text is the key; ``addressing: true`` adds WS-Addressing ``Action``,
``MessageID`` and ``To``, the MessageID being ``urn:uuid:`` and a UUID
derived from the key (version 5), so a repeat has the same MessageID;
``field: Name`` puts the key into the operation's parameter ``Name`` (the
WSDL must have one). ``operations`` limits it to the operations listed. The
system must honour it (answer a repeated key with its first answer, create
nothing again); docs/configuration.md says what to ask of the vendor.

A call's payload, after the profile's ``payload`` mapping, is a mapping of the
operation's parameters (a non-mapping is passed as the single argument). The
result is plain JSON-able data, judged by the ``success`` rule and mapped by
``response`` and ``reply`` (``connectors.profile``) after this conversion:
``zeep.helpers.serialize_object`` then Decimal -> string (exact; ``decimal:
float`` to get numbers), date/time -> ISO 8601, bytes -> base64, XML -> text.

Errors: a SOAP fault whose code is Server/Receiver is recoverable, as is one
whose detail carries ``retryable``/``recoverable`` = true or whose code is in
``recoverable_faults``; other faults (Client/Sender, VersionMismatch, …) are
permanent. HTTP and connection errors as in ``connectors.http``. A reply or
WSDL with a DTD, entity declarations or external references is refused by
zeep before anything is expanded (``forbid_dtd``, ``forbid_entities``,
``forbid_external``; ``xml_huge_tree`` off) and raised as ``UnsafeXMLError``;
replies are checked for a DOCTYPE in their prolog, in whatever encoding, even
before zeep parses them (``core.safexml.declares_dtd``). While the WSDL
loads, its imports are fetched only from the WSDL's own origin (or
``import_origins``): zeep's ``forbid_external`` would refuse every remote
xsd:import, so the transport enforces the narrower rule itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import zeep
from lxml import etree
from zeep import Settings
from zeep import exceptions as zx
from zeep.cache import InMemoryCache, SqliteCache
from zeep.helpers import serialize_object
from zeep.loader import parse_xml
from zeep.plugins import Plugin
from zeep.transports import Transport
from zeep.wsa import WSA
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding
from zeep.wsdl.utils import get_or_create_header
from zeep.wsse import utils as wsse_utils
from zeep.wsse.username import UsernameToken

from bdchub.core import tracing
from bdchub.core.errors import (
    ConfigError,
    ConnectorError,
    PermanentError,
    RecoverableError,
    TimeoutError_,
    UnsafeXMLError,
)
from bdchub.core.i18n import _
from bdchub.core.safexml import declares_dtd
from bdchub.core.suggest import did_you_mean

from . import profile, wsdl
from .base import CallContext, Connector, Health
from .http import (
    HEADERS_SCHEMA,
    POOL_SCHEMA,
    RECOVERABLE_STATUSES,
    TLS_SCHEMA,
    classify_requests_error,
    make_session,
    parse_retry_after,
    status_error,
    timeouts,
)

RECOVERABLE_FAULT_CODES = frozenset({"Server", "Receiver"})
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_UNSAFE_HINTS = ("huge", "amplification", "excessive depth", "entity", "doctype", "dtd")
#: Namespace of the UUIDs that WS-Addressing MessageIDs are derived from (``addressing: true``).
MESSAGE_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:bdc-hub:idempotency")

IDEMPOTENCY_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "where each call carries its idempotency key, for the service to honour",
    "anyOf": [{"required": ["header"]}, {"required": ["addressing"]}, {"required": ["field"]}],
    "properties": {
        "header": {"type": "string", "pattern": r"^\{[^{}\s]+\}[A-Za-z_][A-Za-z0-9_.-]*$",
                   "description": "SOAP header element {namespace}Name whose text is the key"},
        "addressing": {"type": "boolean",
                       "description": "WS-Addressing Action, MessageID (derived from the key) "
                                      "and To"},
        "field": {"type": "string", "minLength": 1,
                  "description": "parameter of the operation that carries the key"},
        "operations": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                       "description": "only these operations (aliases or WSDL names); "
                                      "default every operation"},
    },
}


def message_id(key: str) -> str:
    """The WS-Addressing MessageID of a call with idempotency ``key``: the same on every attempt."""
    return f"urn:uuid:{uuid.uuid5(MESSAGE_ID_NAMESPACE, key)}"


class SoapConnector(Connector):
    type_name = "soap"
    config_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["wsdl"],
        "$defs": profile.DEFS,
        "properties": {
            "wsdl": {"type": "string", "description":
                     "WSDL file (relative to the config file) or http(s) URL"},
            "service": {"type": "string", "description": "service name; default the first"},
            "port": {"type": "string", "description": "port name; default by soap_version, "
                                                      "else the first"},
            "soap_version": {"enum": ["1.1", "1.2"],
                             "description": "pick the service's port with this binding"},
            "address": {"type": "string", "pattern": "^https?://",
                        "description": "endpoint URL instead of the WSDL's soap:address"},
            "cache": {
                "type": "object", "additionalProperties": False,
                "description": "cache of WSDL/XSD documents fetched by URL",
                "properties": {
                    "kind": {"enum": ["memory", "sqlite", "none"], "default": "memory"},
                    "path": {"type": "string", "description": "sqlite file (relative to config)"},
                    "timeout": {"type": "number", "minimum": 0, "default": 3600,
                                "description": "seconds a cached document is used"},
                },
            },
            "wsse": {
                "type": "object", "additionalProperties": False, "required": ["username"],
                "description": "WS-Security UsernameToken header",
                "properties": {
                    "username": {"type": "string"},
                    "password": {"type": "string", "secret": True},
                    "use_digest": {"type": "boolean", "default": False,
                                   "description": "PasswordDigest with nonce and created"},
                    "timestamp": {"type": "boolean", "default": True,
                                  "description": "add a wsu:Timestamp"},
                    "ttl": {"type": "number", "exclusiveMinimum": 0, "default": 300,
                            "description": "seconds until the timestamp expires"},
                },
            },
            "tls": TLS_SCHEMA,
            "pool": POOL_SCHEMA,
            "headers": HEADERS_SCHEMA,
            "strict": {"type": "boolean", "default": True,
                       "description": "zeep strict parsing of replies"},
            "decimal": {"enum": ["string", "float"], "default": "string",
                        "description": "how xsd:decimal values appear in results"},
            "import_origins": {"type": "array", "items": {"type": "string",
                                                          "pattern": "^https?://"},
                               "description": "origins besides the WSDL's own from which "
                                              "its xsd:import/include may be fetched"},
            "recoverable_faults": {"type": "array", "items": {"type": "string"},
                                   "description": "fault codes/subcodes (local names) "
                                                  "worth retrying besides Server/Receiver"},
            "operations": {
                "type": "object",
                "description": "the profile: name in the county's words -> WSDL operation, "
                               "payload and reply mappings, success rule "
                               "(connectors.profile); any WSDL operation works by name too",
                "additionalProperties": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "operation": {"type": "string", "minLength": 1,
                                      "description": "WSDL operation; default the name"},
                        **profile.OPERATION_PROPERTIES,
                    },
                },
            },
            **profile.BLOCK_PROPERTIES,
            "idempotency": IDEMPOTENCY_SCHEMA,
            "probe": {
                "type": "object", "additionalProperties": False, "required": ["operation"],
                "description": "operation called by health() after the WSDL fetch",
                "properties": {"operation": {"type": "string"},
                               "payload": {"type": "object"}},
            },
        },
    }

    def __init__(self, name: str, config: dict[str, Any], **kwargs: Any):
        super().__init__(name, config, **kwargs)
        self.session: requests.Session | None = None
        self.client: Any = None
        self.service: Any = None
        self.binding: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._profile: profile.Profile | None = None

    @property
    def endpoint(self) -> str:
        return str(self.config.get("address") or self.config["wsdl"])

    # ------------------------------------------------------------- lifecycle
    def wsdl_location(self) -> str:
        wsdl = str(self.config["wsdl"])
        if urlsplit(wsdl).scheme in ("http", "https"):
            return wsdl
        if wsdl.startswith("file://"):
            wsdl = wsdl[len("file://"):]
        path = self.resolve_path(wsdl)
        if not path.is_file():
            raise ConfigError(_("connector {name}: WSDL file {path} not found",
                                name=self.name, path=path))
        return str(path)

    def _settings(self, *, loading: bool = False) -> Any:
        # While the WSDL loads, its xsd:imports may be fetched, but only from the
        # WSDL's own origin (the transport checks; see _Transport.load). Replies
        # get zeep's full refusal of anything external.
        return Settings(strict=self.config.get("strict", True), forbid_dtd=True,
                        forbid_entities=True, forbid_external=not loading,
                        xml_huge_tree=False)

    def _origins(self, location: str) -> set[str]:
        origins = {_origin(url) for url in self.config.get("import_origins") or []}
        if urlsplit(location).scheme in ("http", "https"):
            origins.add(_origin(location))
        return origins

    def open(self) -> None:
        with self._lock:
            if self.client is not None:
                return
            # Compiled before the WSDL is fetched: a bad mapping is the config's fault
            # whatever the endpoint's state.
            self._profile = profile.Profile(self.name, self.config, vendor_key="operation")
            try:
                self._open()
            except ConnectorError:
                raise
            except ConfigError:
                raise
            except Exception as exc:
                raise self.classify(exc) from exc

    def _open(self) -> None:
        location = self.wsdl_location()
        session = make_session(self)
        transport = _Transport(self, session=session, cache=self._cache(),
                               timeout=self.timeout)
        transport.allowed_origins = self._origins(location)
        client = zeep.Client(location, transport=transport, settings=self._settings(loading=True),
                             wsse=_FreshUsernameToken(self.config["wsse"])
                             if self.config.get("wsse") else None,
                             plugins=[_IdempotencyPlugin(self)]
                             if self.config.get("idempotency") else [])
        client.settings = self._settings()
        client.wsdl.settings = client.settings
        service_name, port_name = self._select(client)
        if self.config.get("address"):
            port = client.wsdl.services[service_name].ports[port_name]
            self.binding = port.binding
            self.service = client.create_service(port.binding.name.text, self.config["address"])
        else:
            self.service = client.bind(service_name, port_name)
            self.binding = client.wsdl.services[service_name].ports[port_name].binding
        self.session = session
        self.client = client
        # What was fetched over the network, kept for hub check to read offline.
        wsdl.remember(transport.loaded, self.base_dir)

    def _cache(self) -> Any:
        cfg = self.config.get("cache") or {}
        kind = cfg.get("kind", "memory")
        timeout = int(cfg.get("timeout", 3600))
        if kind == "none":
            return None
        if kind == "sqlite":
            path = cfg.get("path")
            return SqliteCache(path=str(self.resolve_path(path)) if path else None,
                               timeout=timeout)
        return InMemoryCache(timeout=timeout)

    def _select(self, client: Any) -> tuple[str, str]:
        services = client.wsdl.services
        if not services:
            raise ConfigError(_("connector {name}: the WSDL defines no service", name=self.name))
        service_name = self.config.get("service") or next(iter(services))
        if service_name not in services:
            raise ConfigError(_("connector {name}: no service {service} in the WSDL; "
                                "it has {known}", name=self.name, service=service_name,
                                known=", ".join(services)))
        ports = services[service_name].ports
        port_name = self.config.get("port")
        version = self.config.get("soap_version")
        if port_name is None and version:
            wanted = Soap12Binding if version == "1.2" else Soap11Binding
            matching = [name for name, port in ports.items() if type(port.binding) is wanted]
            if not matching:
                raise ConfigError(_("connector {name}: service {service} has no SOAP "
                                    "{version} port", name=self.name, service=service_name,
                                    version=version))
            port_name = matching[0]
        port_name = port_name or next(iter(ports))
        if port_name not in ports:
            raise ConfigError(_("connector {name}: no port {port} in service {service}; "
                                "it has {known}", name=self.name, port=port_name,
                                service=service_name, known=", ".join(ports)))
        return service_name, port_name

    def close(self) -> None:
        with self._lock:
            session, self.session = self.session, None
            self.client = self.service = self.binding = None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - close never raises
                pass

    @property
    def soap_version(self) -> str:
        """'1.1' or '1.2' once open."""
        return "1.2" if isinstance(self.binding, Soap12Binding) else "1.1"

    def operations(self) -> list[str]:
        names = set(self.config.get("operations") or {})
        if self.binding is not None:
            names |= set(self.binding._operations)
        return sorted(names)

    # ------------------------------------------------------------------ call
    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        context = context or CallContext()
        if self.client is None:
            self.open()
        assert self._profile is not None
        op = self._profile.operation(operation)
        real = op.vendor
        remaining = context.remaining(self.timeout)
        if remaining <= 0:
            raise TimeoutError_(_("connector {name}: the call's deadline has passed",
                                  name=self.name), connector=self.name, operation=operation)
        try:
            method = self.service[real]
        except (AttributeError, KeyError) as exc:
            known = sorted(self.binding._operations) if self.binding is not None else []
            raise PermanentError(_("connector {name} has no operation {op}{hint}; known: {known}",
                                   name=self.name, op=real, hint=did_you_mean(real, known),
                                   known=", ".join(self.operations())),
                                 connector=self.name, operation=operation) from exc
        payload = op.request(payload)
        self._local.timeout = remaining
        self._local.status = None
        self._local.headers = {}
        key = self._idempotency_key(operation, real, context)
        self._local.idempotency_key = key
        field = (self.config.get("idempotency") or {}).get("field")
        if key and field and isinstance(payload, dict):
            payload = {**payload, field: key}
        try:
            if isinstance(payload, dict):
                result = method(**payload)
            elif payload is None:
                result = method()
            else:
                result = method(payload)
        except Exception as exc:
            raise self.classify(exc, operation) from exc
        finally:
            self._local.timeout = None
            self._local.idempotency_key = ""
        data = jsonable(result, decimal=self.config.get("decimal", "string"))
        return op.result(data, connector=self.name, status=getattr(self._local, "status", None))

    def _idempotency_key(self, operation: str, real: str, context: CallContext) -> str:
        """The key this call carries, or "" when ``idempotency`` leaves it out."""
        cfg = self.config.get("idempotency")
        if not cfg or not context.idempotency_key:
            return ""
        only = cfg.get("operations")
        if only and operation not in only and real not in only:
            return ""
        return context.idempotency_key

    def classify(self, exc: BaseException, operation: str = "") -> ConnectorError:
        if isinstance(exc, ConnectorError):
            return exc
        where = {"connector": self.name, "operation": operation}
        status = getattr(self._local, "status", None)
        headers = getattr(self._local, "headers", None) or {}
        if isinstance(exc, zx.DTDForbidden | zx.EntitiesForbidden | zx.ExternalReferenceForbidden):
            return UnsafeXMLError(_("connector {name}: refused unsafe XML from the endpoint "
                                    "({kind}); nothing was expanded", name=self.name,
                                    kind=type(exc).__name__), **where, status=status)
        if isinstance(exc, zx.Fault):
            return self._fault(exc, status, headers, where)
        if isinstance(exc, zx.TransportError):
            code = exc.status_code or status or 0
            text = str(exc.message or exc)
            if _looks_unsafe(text):
                return UnsafeXMLError(_("connector {name}: refused unsafe XML from the "
                                        "endpoint: {error}", name=self.name, error=text[:200]),
                                      **where, status=code or None)
            if code:
                return status_error(code, _("connector {name}: HTTP {status}: {error}",
                                            name=self.name, status=code, error=text[:200]),
                                    retry_after=parse_retry_after(headers.get("Retry-After")),
                                    **where)
            return PermanentError(_("connector {name}: {error}", name=self.name,
                                    error=text[:200]), **where)
        if isinstance(exc, zx.XMLSyntaxError | etree.XMLSyntaxError):
            text = str(exc)
            cls = UnsafeXMLError if _looks_unsafe(text) else PermanentError
            return cls(_("connector {name}: the endpoint's XML cannot be read: {error}",
                         name=self.name, error=text[:200]), **where, status=status)
        if isinstance(exc, zx.ValidationError | zx.LookupError | TypeError | zx.XMLParseError):
            return PermanentError(_("connector {name}: the request does not fit the WSDL: "
                                    "{error}", name=self.name, error=str(exc)[:300]), **where)
        if isinstance(exc, zx.Error):
            return PermanentError(_("connector {name}: {error}", name=self.name,
                                    error=str(exc)[:300]), **where)
        return classify_requests_error(exc, **where)

    def _fault(self, fault: Any, status: int | None, headers: dict[str, str],
               where: dict[str, str]) -> ConnectorError:
        code = _local_name(fault.code)
        subcodes = [_local_name(getattr(s, "text", s)) for s in (fault.subcodes or [])]
        said = _detail_flag(fault.detail)
        extra = set(self.config.get("recoverable_faults") or [])
        if said is not None:
            recoverable = said
        elif code:
            recoverable = code in RECOVERABLE_FAULT_CODES or bool(extra & {code, *subcodes})
        else:
            # "Unknown fault": a non-200 reply without a Fault element; the status decides.
            recoverable = status in RECOVERABLE_STATUSES
        cls = RecoverableError if recoverable else PermanentError
        error = cls(_("connector {name}: SOAP fault {code}: {message}", name=self.name,
                      code=fault.code or "-", message=fault.message or ""),
                    **where, status=status,
                    retry_after=parse_retry_after(headers.get("Retry-After")) if recoverable else None)
        error.fault_code = code  # type: ignore[attr-defined]
        return error

    # ---------------------------------------------------------------- health
    def health(self) -> Health:
        """Fetch the WSDL again (not from the cache), open, and call the probe."""
        started = time.monotonic()
        try:
            location = self.wsdl_location()
            if urlsplit(location).scheme in ("http", "https"):
                session = self.session or make_session(self)
                try:
                    reply = session.get(location, timeout=timeouts(self.timeout))
                finally:
                    if session is not self.session:
                        session.close()
                if reply.status_code != 200:
                    raise status_error(reply.status_code,
                                       _("connector {name}: WSDL fetch answered HTTP {status}",
                                         name=self.name, status=reply.status_code),
                                       connector=self.name, operation="health")
                content = reply.content
            else:
                content = Path(location).read_bytes()
            self._parse_safely(content)
            self.open()
            detail = f"WSDL ok, SOAP {self.soap_version}"
            probe = self.config.get("probe")
            if probe:
                self.call(probe["operation"], probe.get("payload") or {},
                          CallContext(deadline=time.monotonic() + self.timeout))
                detail += f", {probe['operation']} ok"
            return Health(up=True, latency_ms=(time.monotonic() - started) * 1000, detail=detail)
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
            error = exc if isinstance(exc, ConnectorError | ConfigError) else self.classify(exc)
            return Health(up=False, latency_ms=(time.monotonic() - started) * 1000,
                          detail=str(error))

    def _parse_safely(self, content: bytes) -> None:
        parse_xml(content, None, settings=self._settings())

    @classmethod
    def config_check(cls, name: str, block: Any, base_dir: Path | None) -> profile.VendorCheck:
        """``hub check`` of this block and of every call made of it, against its WSDL
        read offline (``connectors.wsdl``; the hook of ``connectors.registry``), and
        of its profile (``connectors.profile``)."""
        check = wsdl.WsdlCheck(cls(name, dict(block), base_dir=base_dir))

        def outputs(operation: str) -> tuple[str, ...] | None:
            # On the connector's own port; None when the WSDL cannot be read offline.
            parts = check.parts(operation)
            return parts[1] if parts is not None else None

        return profile.VendorCheck(name, block, check, vendor_key="operation", outputs=outputs)


class _Transport(Transport):
    """A zeep Transport whose POST timeout is the calling thread's deadline and
    which records the HTTP status and headers for error classification."""

    def __init__(self, connector: SoapConnector, **kwargs: Any):
        super().__init__(**kwargs)
        self.connector = connector
        self.allowed_origins: set[str] = set()
        self.loaded: dict[str, bytes] = {}

    def load(self, url: str) -> bytes:
        if urlsplit(url).scheme in ("http", "https") and _origin(url) not in self.allowed_origins:
            # A WSDL must not make the hub fetch from anywhere it likes (SSRF).
            raise zx.ExternalReferenceForbidden(url)
        content = super().load(url)
        if declares_dtd(content):
            raise zx.DTDForbidden("WSDL/XSD document", url, None)
        self.loaded[url] = content
        return content

    def post(self, address: str, message: Any, headers: dict[str, str]) -> Any:
        local = self.connector._local
        remaining = getattr(local, "timeout", None) or self.connector.timeout
        traced = tracing.ACTIVE
        if traced is not None:  # the call's span (connectors.resilience) as the parent
            headers = dict(headers)
            traced.inject(headers)
        response = self.session.post(address, data=message, headers=headers,
                                     timeout=timeouts(remaining))
        if traced is not None:
            traced.note("http.response.status_code", response.status_code)
        local.status = response.status_code
        local.headers = dict(response.headers)
        if declares_dtd(response.content):
            # Refused before any parser sees it; zeep's forbid_* settings are the second wall.
            raise UnsafeXMLError(
                _("connector {name}: refused unsafe XML from the endpoint (a DOCTYPE in the "
                  "reply); nothing was expanded", name=self.connector.name),
                connector=self.connector.name, status=response.status_code)
        return response


class _IdempotencyPlugin(Plugin):
    """Puts the calling thread's idempotency key into the outgoing envelope's
    header, where ``idempotency`` says the service reads it."""

    def __init__(self, connector: SoapConnector):
        self.connector = connector
        cfg = connector.config["idempotency"]
        self.element = cfg.get("header")
        self.addressing = bool(cfg.get("addressing"))

    def egress(self, envelope: Any, http_headers: Any, operation: Any,
               binding_options: Any) -> Any:
        key = getattr(self.connector._local, "idempotency_key", "")
        if not key or not (self.element or self.addressing):
            return envelope, http_headers
        header = get_or_create_header(envelope)
        if self.element:
            etree.SubElement(header, self.element).text = key
        if self.addressing:
            action = operation.abstract.wsa_action or operation.soapaction or ""
            header.extend([WSA.Action(action), WSA.MessageID(message_id(key)),
                           WSA.To(binding_options.get("address") or "")])
        return envelope, http_headers


class _FreshUsernameToken:
    """WS-Security UsernameToken (+ Timestamp) built anew for every message, so
    nonce, created and the timestamp window are never reused."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def apply(self, envelope: Any, headers: Any) -> Any:
        cfg = self.config
        timestamp = None
        if cfg.get("timestamp", True):
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            expires = now + dt.timedelta(seconds=float(cfg.get("ttl", 300)))
            timestamp = wsse_utils.WSU.Timestamp(
                wsse_utils.WSU.Created(now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                wsse_utils.WSU.Expires(expires.strftime("%Y-%m-%dT%H:%M:%SZ")))
        token = UsernameToken(cfg["username"], cfg.get("password"),
                              use_digest=cfg.get("use_digest", False),
                              timestamp_token=timestamp, zulu_timestamp=True)
        return token.apply(envelope, headers)

    def verify(self, envelope: Any) -> Any:
        return envelope


def jsonable(value: Any, *, decimal: str = "string") -> Any:
    """zeep results as plain JSON-able data."""
    return _plain(serialize_object(value, target_cls=dict), decimal)


def _plain(value: Any, decimal: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v, decimal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, decimal) for v in value]
    if isinstance(value, Decimal):
        if decimal == "float":
            return float(value)
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, etree._Element):
        return etree.tostring(value, encoding="unicode")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "__values__"):  # a zeep object that escaped serialisation
        return _plain(dict(value.__values__), decimal)
    return str(value)


def _local_name(code: Any) -> str:
    if code is None:
        return ""
    text = str(code)
    if "}" in text:
        text = text.rsplit("}", 1)[1]
    if ":" in text:
        text = text.rsplit(":", 1)[1]
    # SOAP 1.1 dotted codes, e.g. "Server.Busy", are still Server faults.
    return text.split(".", 1)[0].strip()


def _detail_flag(detail: Any) -> bool | None:
    """``True``/``False`` if the fault's detail says whether to retry."""
    if detail is None or not hasattr(detail, "iter"):
        return None
    for element in detail.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element).localname.lower()
        if name in ("retryable", "recoverable", "retry"):
            text = (element.text or "").strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _looks_unsafe(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _UNSAFE_HINTS)


__all__ = ["SoapConnector", "jsonable", "message_id"]
