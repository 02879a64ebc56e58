"""Calls a Chat Completions server with the real `openai` client instrumented by an unmodified
instrumentation library from PyPI, exporting OTLP/HTTP (protobuf) spans and logs through the edge.

    python3 openai_instrumented.py INSTRUMENTATION OPENAI_BASE_URL EDGE_URL PUBLIC_KEY SECRET_KEY

INSTRUMENTATION is `openai-v2` (opentelemetry-instrumentation-openai-v2: the messages and the
choice as GenAI events in OTLP logs, with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`)
or `openinference` (openinference-instrumentation-openai: the messages as `llm.input_messages.*`
span attributes). One chat call per line read from stdin, which first prints the call's trace
and span ids (`{"trace_id": ..., "span_id": ...}`); then `logs-first` exports its logs, prints
`exported logs`, waits for the next line and exports its spans; `spans-first` the other way
round; `both` exports spans then logs at once. Each call ends by printing `done`. Exits non-zero
if an export fails.
"""
import base64
import json
import os
import sys

# Read by the instrumentation when it is enabled.
os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"

from openai import OpenAI  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

instrumentation, base_url, edge, public_key, secret_key = sys.argv[1:6]
failures = []


def checked(exporter, what):
    """`exporter`, noting each export that does not succeed (a flush alone does not say)."""
    export = exporter.export

    def export_checked(batch):
        result = export(batch)
        if result.name != "SUCCESS":
            failures.append(what)
        return result

    exporter.export = export_checked
    return exporter


headers = {"Authorization": "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()}
resource = Resource.create({"service.name": "support-bot", "service.version": "1.2.0"})
# Nothing is exported until this script flushes: an hour between scheduled exports.
tracer_provider = TracerProvider(resource=resource)
spans = BatchSpanProcessor(checked(OTLPSpanExporter(endpoint=f"{edge}/v1/traces", headers=headers), "spans"),
                           schedule_delay_millis=3_600_000)
tracer_provider.add_span_processor(spans)
logger_provider = LoggerProvider(resource=resource)
logs = BatchLogRecordProcessor(checked(OTLPLogExporter(endpoint=f"{edge}/v1/logs", headers=headers), "logs"),
                               schedule_delay_millis=3_600_000)
logger_provider.add_log_record_processor(logs)

if instrumentation == "openai-v2":
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
elif instrumentation == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
else:
    sys.exit(f"unknown instrumentation {instrumentation!r}")

# The span the instrumentation starts is the call's: its ids are read from a copy of each span.
finished = InMemorySpanExporter()
tracer_provider.add_span_processor(SimpleSpanProcessor(finished))
client = OpenAI(base_url=base_url, api_key="sk-test")
messages = [
    {"role": "system", "content": "You answer about orders in one sentence."},
    {"role": "user", "content": "Where is order A-1?"},
    {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                          "function": {"name": "lookup_order", "arguments": '{"order": "A-1"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "shipped 2026-12-01"},
]


def flush(what):
    if not (spans if what == "spans" else logs).force_flush() or failures:
        sys.exit(f"exporting {what} failed: {failures}")


for line in iter(sys.stdin.readline, ""):
    order = line.strip()
    if not order:
        continue
    client.chat.completions.create(model="gpt-5.3-codex", messages=messages, temperature=0.2)
    span = finished.get_finished_spans()[-1].get_span_context()
    print(json.dumps({"trace_id": f"{span.trace_id:032x}", "span_id": f"{span.span_id:016x}"}), flush=True)
    first, second = ("logs", "spans") if order == "logs-first" else ("spans", "logs")
    flush(first)
    if order != "both":
        print(f"exported {first}", flush=True)
        sys.stdin.readline()
    flush(second)
    print("done", flush=True)
tracer_provider.shutdown()
logger_provider.shutdown()
