"""The Langfuse Python SDK's (v5, unmodified) trace deletes.

    python3 langfuse_trace_delete.py BASE_URL PUBLIC_KEY SECRET_KEY TRACE_ID OTHER_IDS

Deletes TRACE_ID with `trace.delete`, the comma-separated OTHER_IDS with `trace.delete_multiple`,
and tries an empty list. Prints the answers as JSON on the last line.
"""
import json
import sys

from langfuse import Langfuse

base_url, public_key, secret_key, trace_id, others = sys.argv[1:6]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
api = langfuse.api.trace
seen = {}
one = api.delete(trace_id)
seen["one"] = one.message
seen["one_id"] = (one.dict() if hasattr(one, "dict") else one.model_dump()).get("deletionId")
many = api.delete_multiple(trace_ids=others.split(","))
seen["many"] = many.message
seen["many_id"] = (many.dict() if hasattr(many, "dict") else many.model_dump()).get("deletionId")
try:
    api.delete_multiple(trace_ids=[])
    seen["empty"] = "accepted"
except Exception as error:  # the SDK raises on a 4xx
    seen["empty"] = str(getattr(error, "status_code", error))
print(json.dumps(seen, default=str))
