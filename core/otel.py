"""The OpenTelemetry side of ``core.tracing``: imported only when tracing is on.

``Tracing`` holds a tracer provider of its own (not OpenTelemetry's global one,
which can be set once per process) with the configured exporter and sampler,
and the W3C Trace Context propagator. The traced places of the hub use it
through a few verbs: start a span (from the current span, or from the
``traceparent`` of an envelope or a request), make it current, read its
headers, and mark the current one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT,
         "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}


def _exporter(settings: Mapping[str, Any]) -> SpanExporter | None:
    kind = settings.get("exporter", "otlp")
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter(service_name=settings.get("service_name"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.get("endpoint")
    # Without an endpoint the exporter reads OTEL_EXPORTER_OTLP_* as usual.
    return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()


class Tracing:
    """Spans of one process, as ``settings`` (the ``tracing:`` section) says."""

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = dict(settings)
        ratio = float(self.settings.get("sample_ratio", 1.0))
        # A caller's sampling decision (the traceparent's flag) is kept; the ratio
        # decides for the traces the hub starts itself.
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": self.settings.get("service_name")
                                      or "bdc-hub"}),
            sampler=ParentBased(TraceIdRatioBased(ratio)))
        exporter = _exporter(self.settings)
        if exporter is not None:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("bdchub")
        self.propagator = TraceContextTextMapPropagator()

    def add_processor(self, processor: SpanProcessor) -> None:
        """Another destination for the spans (tests: an in-memory exporter)."""
        self.provider.add_span_processor(processor)

    # -- spans
    def start(self, name: str, kind: str = "internal", attributes: Mapping[str, Any] | None = None,
              *, parent: Mapping[str, str] | None = None) -> Span:
        """A started span, child of the current span, or with ``parent`` of the span
        whose ``traceparent`` those headers carry (none there: a new trace)."""
        ctx = self.propagator.extract(parent, context=Context()) if parent is not None else None
        return self.tracer.start_span(name, context=ctx, kind=KINDS[kind],
                                      attributes=dict(attributes or {}))

    def enter(self, span: Span) -> object:
        """Make ``span`` current; ``leave`` with what this returns."""
        return otel_context.attach(trace.set_span_in_context(span))

    def leave(self, token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    @contextmanager
    def current(self, span: Span) -> Iterator[Span]:
        """``span`` is current inside, and ended after (with the error that left it)."""
        token = self.enter(span)
        try:
            yield span
        except BaseException as exc:
            failed(span, type(exc).__name__)
            raise
        finally:
            self.leave(token)
            span.end()

    # -- propagation
    def headers(self, span: Span | None = None) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of ``span``, or of the current span."""
        carrier: dict[str, str] = {}
        ctx = trace.set_span_in_context(span) if span is not None else None
        self.propagator.inject(carrier, context=ctx)
        return carrier

    def inject(self, carrier: MutableMapping[str, str]) -> None:
        """Put the current span's ``traceparent`` into an outgoing request's headers."""
        self.propagator.inject(carrier)

    # -- the current span
    def note(self, key: str, value: Any) -> None:
        """An attribute of the current span (the HTTP status a connector got)."""
        trace.get_current_span().set_attribute(key, value)

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        trace.get_current_span().add_event(name, dict(attributes))

    # -- life
    def flush(self, timeout_ms: int = 5000) -> None:
        self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.provider.shutdown()


def failed(span: Span, error_type: str) -> None:
    """Mark ``span`` failed with the error's class name: never its text, which may
    quote what an endpoint refused (an ID number)."""
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
