"""The Langfuse Python SDK's (v5, unmodified) v2 read clients against AgentTrace.

    python3 langfuse_reads.py BASE_URL PUBLIC_KEY SECRET_KEY FROM TO

Pages through `api.observations.get_many` (two per page, following `meta.cursor`), then asks
`api.metrics.metrics` for generation count, total cost and p50 latency by model per day. Prints
what it saw as JSON on the last line.
"""
import json
import sys
from datetime import datetime

from langfuse import Langfuse

base_url, public_key, secret_key, start, end = sys.argv[1:6]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
seen = {"observations": []}

cursor = None
while True:
    page = langfuse.api.observations.get_many(
        fields="core,basic,usage,model,io,metrics,trace_context", limit=2, cursor=cursor,
        from_start_time=datetime.fromisoformat(start), to_start_time=datetime.fromisoformat(end))
    for observation in page.data:
        seen["observations"].append({
            "id": observation.id, "traceId": observation.trace_id, "type": observation.type,
            "name": observation.name, "level": observation.level, "model": observation.model,
            "totalTokens": (observation.usage_details or {}).get("total"),
            "startTime": observation.start_time.isoformat(), "traceName": observation.trace_name,
        })
    cursor = page.meta.cursor
    if not cursor:
        break

generations = langfuse.api.observations.get_many(type="GENERATION", limit=1000,
                                                  fields="core,basic")
seen["generations"] = sorted(o.id for o in generations.data)

query = {
    "view": "observations",
    "dimensions": [{"field": "providedModelName"}],
    "metrics": [{"measure": "count", "aggregation": "count"},
                {"measure": "totalCost", "aggregation": "sum"},
                {"measure": "inputTokens", "aggregation": "sum"}],
    "filters": [{"column": "type", "operator": "=", "value": "GENERATION", "type": "string"}],
    "timeDimension": {"granularity": "day"},
    "fromTimestamp": start,
    "toTimestamp": end,
}
seen["metrics"] = langfuse.api.metrics.metrics(query=json.dumps(query)).data
print(json.dumps(seen))
