"""Exports spans through the edge with the real OpenTelemetry Python SDK (OTLP/HTTP protobuf).

    python3 otel_export.py ENDPOINT PUBLIC_KEY SECRET_KEY

ENDPOINT is the full traces URL (e.g. http://127.0.0.1:8787/api/public/otel/v1/traces).
Exits 0 only if the exporter reports success.
"""
import base64
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

endpoint, public_key, secret_key = sys.argv[1:4]
auth = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
exporter = OTLPSpanExporter(endpoint=endpoint, headers={"Authorization": f"Basic {auth}"})
results = []


class Recording(SimpleSpanProcessor):
    def on_end(self, span):
        results.append(exporter.export([span]))


provider = TracerProvider(resource=Resource.create({"service.name": "python-sdk-agent"}))
provider.add_span_processor(Recording(exporter))
tracer = provider.get_tracer("agenttrace.tests")
with tracer.start_as_current_span("invoke_agent", attributes={"session.id": "py-session"}):
    with tracer.start_as_current_span("chat gpt-4.1-mini", attributes={
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4.1-mini",
        "gen_ai.usage.input_tokens": 42,
        "gen_ai.usage.output_tokens": 7,
    }):
        pass
    with tracer.start_as_current_span("execute_tool search", attributes={
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
    }):
        pass
provider.shutdown()
ok = len(results) == 3 and all(r == SpanExportResult.SUCCESS for r in results)
print(f"exported {len(results)} spans: {results}")
sys.exit(0 if ok else 1)
