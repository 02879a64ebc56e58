"""The Langfuse Python SDK's (v5, unmodified) score configs, and scores given against them.

    python3 langfuse_score_configs.py BASE_URL PUBLIC_KEY SECRET_KEY

Creates a numeric (0 to 5), a categorical and a boolean config; lists, gets and archives one;
records a trace and scores it against the configs: some fit, some do not (out of bounds, not a
category, an archived config, another name). Prints what it saw as JSON on the last line, with
the trace id and the ids of the scores that fit and those that do not.
"""
import json
import sys

from langfuse import Langfuse
from langfuse.api import ConfigCategory, ScoreConfigDataType

base_url, public_key, secret_key = sys.argv[1:4]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url, flush_at=1)
api = langfuse.api.score_configs
seen = {}


def shown(config):
    return config.dict(by_alias=True, exclude_none=False)


numeric = api.create(name="helpfulness", data_type=ScoreConfigDataType.NUMERIC, min_value=0, max_value=5,
                     description="How helpful was the answer, 0 to 5")
category = api.create(name="tone", data_type=ScoreConfigDataType.CATEGORICAL,
                      categories=[ConfigCategory(value=0, label="rude"), ConfigCategory(value=1, label="polite")])
boolean = api.create(name="resolved", data_type=ScoreConfigDataType.BOOLEAN)
retired = api.create(name="legacy", data_type=ScoreConfigDataType.NUMERIC)
seen["numeric"] = shown(numeric)
seen["category_id"], seen["boolean_id"] = category.id, boolean.id
seen["boolean_categories"] = [(c.label, c.value) for c in boolean.categories]
seen["listed"] = [c.name for c in api.get(page=1, limit=10).data]
seen["got"] = api.get_by_id(category.id).name
seen["archived"] = api.update(retired.id, is_archived=True).is_archived
for name, call in {
    "no_categories": lambda: api.create(name="empty", data_type=ScoreConfigDataType.CATEGORICAL),
    "inverted_bounds": lambda: api.create(name="bad", data_type=ScoreConfigDataType.NUMERIC, min_value=5, max_value=1),
    "missing": lambda: api.get_by_id("00000000-0000-0000-0000-000000000000"),
}.items():
    try:
        call()
        seen[name] = "accepted"
    except Exception as error:  # the SDK raises on a 4xx
        seen[name] = str(getattr(error, "status_code", error))

with langfuse.start_as_current_observation(as_type="span", name="answer") as span:
    span.update(output="It ships tomorrow.")
    trace_id = span.trace_id

fits, misfits = {}, {}
for label, kwargs in {
    "helpfulness 4": dict(name="helpfulness", value=4, data_type="NUMERIC", config_id=numeric.id),
    "tone polite": dict(name="tone", value="polite", data_type="CATEGORICAL", config_id=category.id),
    "resolved 1": dict(name="resolved", value=1, data_type="BOOLEAN", config_id=boolean.id),
}.items():
    score_id = f"fit-{len(fits)}-{trace_id}"
    langfuse.create_score(trace_id=trace_id, score_id=score_id, **kwargs)
    fits[label] = score_id
for label, kwargs in {
    "above max": dict(name="helpfulness", value=7, data_type="NUMERIC", config_id=numeric.id),
    "not a category": dict(name="tone", value="sarcastic", data_type="CATEGORICAL", config_id=category.id),
    "archived": dict(name="legacy", value=1, data_type="NUMERIC", config_id=retired.id),
    "other name": dict(name="helpful", value=3, data_type="NUMERIC", config_id=numeric.id),
    "unknown config": dict(name="helpfulness", value=3, data_type="NUMERIC",
                           config_id="00000000-0000-0000-0000-000000000000"),
}.items():
    score_id = f"misfit-{len(misfits)}-{trace_id}"
    langfuse.create_score(trace_id=trace_id, score_id=score_id, **kwargs)
    misfits[label] = score_id
langfuse.flush()
seen.update(trace_id=trace_id, fits=fits, misfits=misfits)
print(json.dumps(seen, default=str))
