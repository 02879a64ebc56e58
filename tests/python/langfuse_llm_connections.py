"""The Langfuse Python SDK's (v5, unmodified) LLM-connection calls.

    python3 langfuse_llm_connections.py BASE_URL PUBLIC_KEY SECRET_KEY PROVIDER_URL PROVIDER_KEY

Upserts an OpenAI-compatible connection (then again, changed), an Anthropic one, lists them,
deletes the Anthropic one and lists again. Prints what it saw as JSON on the last line.
"""
import json
import sys

from langfuse import Langfuse
from langfuse.api import LlmAdapter

base_url, public_key, secret_key, provider_url, provider_key = sys.argv[1:6]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
api = langfuse.api.llm_connections
seen = {}


def shown(connection):
    return connection.dict(by_alias=True, exclude_none=False)


created = api.upsert(provider="local-openai", adapter=LlmAdapter.OPEN_AI, secret_key=provider_key,
                     base_url=provider_url, custom_models=["judge-small"],
                     extra_headers={"X-Team": "evals"}, config={"model": "judge-small"})
seen["created"] = shown(created)
changed = api.upsert(provider="local-openai", adapter=LlmAdapter.OPEN_AI, secret_key=provider_key,
                     base_url=provider_url, config={"model": "judge-large", "temperature": 0})
seen["changed"] = shown(changed)
claude = api.upsert(provider="claude", adapter=LlmAdapter.ANTHROPIC, secret_key=provider_key,
                    base_url=provider_url)
seen["listed"] = [shown(c) for c in api.list().data]
seen["deleted"] = api.delete(claude.id).message
listed = api.list(page=1, limit=10)
seen["after_delete"] = [c.provider for c in listed.data]
seen["meta"] = {"total": listed.meta.total_items, "page": listed.meta.page}
try:
    api.upsert(provider="bad", adapter=LlmAdapter.BEDROCK, secret_key="x")
    seen["bedrock"] = "accepted"
except Exception as error:  # the SDK raises on a 4xx
    seen["bedrock"] = str(getattr(error, "status_code", error))
print(json.dumps(seen, default=str))
