"""The Langfuse Python SDK's (v5, unmodified) score reads and deletes.

    python3 langfuse_scores_read.py BASE_URL PUBLIC_KEY SECRET_KEY TRACE_ID CONFIG_ID DELETE_ID

Lists the trace's scores (all, by config, numeric ones at least 3, two per page), then deletes
one. Prints what it saw as JSON on the last line.
"""
import json
import sys

from langfuse import Langfuse

base_url, public_key, secret_key, trace_id, config_id, delete_id = sys.argv[1:7]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
api = langfuse.api.scores
seen = {}

every = api.get_many(trace_id=trace_id, fields="details,subject,annotation")
seen["all"] = {s.name: {"value": s.value, "dataType": s.data_type, "source": s.source, "configId": s.config_id,
                        "subject": s.subject.kind if s.subject else None} for s in every.data}
seen["by_config"] = [s.name for s in api.get_many(config_id=config_id).data]
seen["at_least_3"] = [s.name for s in api.get_many(data_type="NUMERIC", value_min=3).data]
first = api.get_many(trace_id=trace_id, limit=2)
second = api.get_many(trace_id=trace_id, limit=2, cursor=first.meta.cursor)
seen["pages"] = [[s.name for s in first.data], [s.name for s in second.data], second.meta.cursor]
for name, call in {
    "session": lambda: api.get_many(session_id="s-1"),
    "value_without_type": lambda: api.get_many(value="1"),
    "too_many": lambda: api.get_many(limit=101),
}.items():
    try:
        call()
        seen[name] = "accepted"
    except Exception as error:  # the SDK raises on a 4xx
        seen[name] = str(getattr(error, "status_code", error))
api.delete(delete_id)
try:
    api.delete("no-such-score")
    seen["delete_missing"] = "accepted"
except Exception as error:
    seen["delete_missing"] = str(getattr(error, "status_code", error))
print(json.dumps(seen, default=str))
