"""Records a trace through the edge with the unmodified Langfuse Python SDK (v5, from PyPI).

    python3 langfuse_sdk.py BASE_URL PUBLIC_KEY SECRET_KEY

Nested spans, a generation with model and usage (priced by AgentTrace's price table), an
`@observe`-decorated function, trace-level user, session, tags and metadata propagated to every
span, and scores of three data types. Prints the trace id as JSON; exits non-zero if the SDK
reports a failed export.
"""
import json
import logging
import sys

from langfuse import Langfuse, observe, propagate_attributes

base_url, public_key, secret_key = sys.argv[1:4]
failures = []


class Remember(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.ERROR:
            failures.append(record.getMessage())


logging.getLogger("langfuse").addHandler(Remember())

langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url, flush_at=1)


@observe(name="lookup-order")
def lookup_order(order_id):
    return {"order": order_id, "status": "shipped"}


with langfuse.start_as_current_observation(as_type="span", name="handle-request", input={"question": "where is A-1?"}) as root:
    with propagate_attributes(user_id="user-42", session_id="sess-7", tags=["sdk", "checkout"],
                              trace_name="checkout-assistant", metadata={"team": "payments"}):
        with langfuse.start_as_current_observation(
            as_type="generation",
            name="answer",
            model="gpt-4.1-mini",
            model_parameters={"temperature": 0.2},
            input=[{"role": "user", "content": "where is A-1?"}],
        ) as generation:
            generation.update(
                output={"role": "assistant", "content": "It shipped."},
                usage_details={"input": 1000, "output": 200},
            )
        lookup_order("A-1")
        with langfuse.start_as_current_observation(as_type="span", name="format-reply") as child:
            child.update(output="It shipped.", level="WARNING", status_message="slow formatter")
    root.update(output={"answer": "It shipped."})
    trace_id = root.trace_id
    generation_id = generation.id

langfuse.create_score(trace_id=trace_id, name="accuracy", value=0.9, data_type="NUMERIC")
langfuse.create_score(trace_id=trace_id, observation_id=generation_id, name="helpful", value=1, data_type="BOOLEAN")
langfuse.create_score(trace_id=trace_id, name="tone", value="friendly", data_type="CATEGORICAL")
langfuse.flush()
langfuse.shutdown()

print(json.dumps({"trace_id": trace_id, "generation_id": generation_id}))
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
