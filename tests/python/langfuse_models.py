"""The Langfuse Python SDK's (v5, unmodified) model definitions.

    python3 langfuse_models.py BASE_URL PUBLIC_KEY SECRET_KEY

Creates a model (USD per token), reads it, replaces it by id, lists the project's models (its
own and the defaults), tries to delete a default and a tiered price, creates and deletes another. Prints
what it saw as JSON on the last line.
"""
import datetime as dt
import json
import sys

from langfuse import Langfuse
from langfuse.api import ModelUsageUnit

base_url, public_key, secret_key = sys.argv[1:4]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
api = langfuse.api.models
seen = {}

created = api.create(model_name="house-llm", match_pattern="(?i)^house-llm(-.*)?$", unit=ModelUsageUnit.TOKENS,
                     input_price=0.000002, output_price=0.000008,
                     start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
seen["created"] = created.dict(by_alias=True)
seen["got"] = api.get(created.id).model_name
replaced = api.upsert(created.id, model_name="house-llm-v2", match_pattern="(?i)^house-llm(-.*)?$",
                      unit=ModelUsageUnit.TOKENS, input_price=0.000003, output_price=0.000009)
seen["replaced"] = {"id": replaced.id, "name": replaced.model_name, "input": replaced.input_price}
listed = api.list(page=1, limit=1000)
seen["own"] = [m.model_name for m in listed.data if not m.is_langfuse_managed]
defaults = [m for m in listed.data if m.is_langfuse_managed]
seen["defaults"] = len(defaults)
for name, call in {
    "delete_default": lambda: api.delete(defaults[0].id),
    "tiers": lambda: api.create(model_name="tiered", match_pattern="tiered", unit=ModelUsageUnit.TOKENS,
                                total_price=0.00001),
    "bad_pattern": lambda: api.create(model_name="bad", match_pattern="(", unit=ModelUsageUnit.TOKENS),
}.items():
    try:
        call()
        seen[name] = "accepted"
    except Exception as error:  # the SDK raises on a 4xx
        seen[name] = str(getattr(error, "status_code", error))
scratch = api.create(model_name="scratch", match_pattern="scratch", unit=ModelUsageUnit.TOKENS)
api.delete(scratch.id)
seen["after_delete"] = [m.model_name for m in api.list().data if not m.is_langfuse_managed]
print(json.dumps(seen, default=str))
