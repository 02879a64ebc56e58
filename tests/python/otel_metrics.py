"""Exports metrics through the edge with the real OpenTelemetry Python SDK (OTLP/HTTP protobuf).

    python3 otel_metrics.py ENDPOINT PUBLIC_KEY SECRET_KEY

The counters Claude Code documents (`claude_code.token.usage`, `claude_code.cost.usage`, delta
temporality) and a histogram. Exits 0 only if the exporter reports success.
"""
import base64
import sys

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult, MetricsData
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

endpoint, public_key, secret_key = sys.argv[1:4]
auth = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
delta = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
exporter = OTLPMetricExporter(endpoint=endpoint, headers={"Authorization": f"Basic {auth}"},
                              preferred_temporality=delta)
reader = InMemoryMetricReader(preferred_temporality=delta)
provider = MeterProvider(metric_readers=[reader],
                         resource=Resource.create({"service.name": "claude-code", "service.version": "2.1.226"}))
meter = provider.get_meter("com.anthropic.claude_code", "2.1.226")
common = {"session.id": "cc-session-1"}
tokens = meter.create_counter("claude_code.token.usage", unit="tokens")
for kind, count in [("input", 1500), ("output", 220), ("cacheRead", 12000)]:
    tokens.add(count, {**common, "type": kind, "model": "claude-sonnet-4-5-20250929"})
meter.create_counter("claude_code.cost.usage", unit="USD").add(0.0123, {**common, "model": "claude-sonnet-4-5-20250929"})
durations = meter.create_histogram("tool.duration", unit="ms")
for value in [12, 800, 3400]:
    durations.record(value, {"tool": "Bash"})
result = exporter.export(reader.get_metrics_data())
sys.exit(0 if result == MetricExportResult.SUCCESS else 1)
