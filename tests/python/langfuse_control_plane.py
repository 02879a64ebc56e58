"""The Langfuse Python SDK's (v5, unmodified) control-plane calls through the edge.

    python3 langfuse_control_plane.py BASE_URL PUBLIC_KEY SECRET_KEY STEP

STEP `setup`: auth_check; a text and a chat prompt (two versions of the text one, `production`
on version 1); get_prompt and compile; a dataset with three items; get_dataset; run_experiment
over it with an evaluator. STEP `moved`: get_prompt again (after the test moved `production`
to version 2). Prints what it saw as JSON on the last line.
"""
import json
import sys

from langfuse import Evaluation, Langfuse

base_url, public_key, secret_key, step = sys.argv[1:5]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url, flush_at=1)
seen = {}

if step == "setup":
    seen["auth_check"] = langfuse.auth_check()
    langfuse.create_prompt(name="movie-critic", type="text", labels=["production"],
                           prompt="As a {{level}} critic, do you like {{movie}}?",
                           config={"model": "gpt-4.1-mini", "temperature": 0.3}, commit_message="first")
    langfuse.create_prompt(name="movie-critic", type="text", labels=["staging"],
                           prompt="As a {{level}} critic, rate {{movie}} from 1 to 10.")
    langfuse.create_prompt(name="support/chat", type="chat", labels=["production"],
                           prompt=[{"role": "system", "content": "You help with {{product}}."},
                                   {"role": "user", "content": "{{question}}"}])
    text = langfuse.get_prompt("movie-critic", cache_ttl_seconds=0)
    chat = langfuse.get_prompt("support/chat", type="chat", cache_ttl_seconds=0)
    seen["text"] = {"version": text.version, "labels": text.labels, "config": text.config,
                    "compiled": text.compile(level="expert", movie="Dune")}
    seen["chat"] = {"version": chat.version, "compiled": chat.compile(product="AgentTrace", question="How?")}
    seen["latest"] = langfuse.get_prompt("movie-critic", label="latest", cache_ttl_seconds=0).version

    langfuse.create_dataset(name="capitals", description="Capital cities",
                            input_schema={"type": "object", "required": ["country"]})
    for country, capital in [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima")]:
        langfuse.create_dataset_item(dataset_name="capitals", input={"country": country},
                                     expected_output=capital, id=f"capital-{country.lower()}")
    dataset = langfuse.get_dataset("capitals")
    seen["items"] = sorted(item.id for item in dataset.items)

    def task(*, item, **_):
        return {"France": "Paris", "Japan": "Kyoto", "Peru": "Lima"}[item.input["country"]]

    def exact(*, output, expected_output, **_):
        return Evaluation(name="exact", value=1.0 if output == expected_output else 0.0)

    result = dataset.run_experiment(name="capitals-baseline", task=task, evaluators=[exact])
    seen["experiment_items"] = len(result.item_results)
    seen["trace_ids"] = sorted(r.trace_id for r in result.item_results)
else:
    seen["production"] = langfuse.get_prompt("movie-critic", cache_ttl_seconds=0).version

langfuse.flush()
langfuse.shutdown()
print(json.dumps(seen))
