"""The Langfuse Python SDK's (v5, unmodified) v2 evaluator and evaluation-rule calls.

    python3 langfuse_evaluators.py BASE_URL PUBLIC_KEY SECRET_KEY

Creates an LLM-as-judge evaluator (a system and a user message, a mapping with a JSONPath, a
numeric output), changes its prompt (version 2) and its name alone (still version 2), lists its
versions, creates a rule judging generations of environment `production` with it, lists, gets
and patches the rule, and tries what must be refused (a code evaluator, an unmapped variable, a
filter on an unknown column). Prints what it saw as JSON on the last line; the rule stays, so
the caller can run the judge job against it.
"""
import json
import sys

from langfuse import Langfuse
from langfuse.api.evaluation_commons import (
    EvaluationRuleFilter_StringOptions,
    EvaluatorOutputDefinition_Numeric,
    PromptVariableMappingInput,
)
from langfuse.api.evaluation_rules import EvaluationRuleEvaluatorAssignmentInput
from langfuse.api.evaluators import (
    CreateEvaluatorRequest_LlmAsJudge,
    CreateEvaluatorRequest_Code,
    EvaluatorChatMessage,
    EvaluatorModelConfig,
    UpdateEvaluatorMetadataRequest,
    UpdateLlmAsJudgeEvaluatorRequest,
)

base_url, public_key, secret_key = sys.argv[1:4]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
evaluators = langfuse.api.evaluators
rules = langfuse.api.evaluation_rules
seen = {}


def shown(model):
    return model.dict(by_alias=True, exclude_none=False)


def status_of(call):
    try:
        call()
        return "accepted"
    except Exception as error:  # the SDK raises on a 4xx
        return str(getattr(error, "status_code", error))


mapping = [
    PromptVariableMappingInput(variable="question", source="input", json_path="$.question"),
    PromptVariableMappingInput(variable="answer", source="output"),
]
output = EvaluatorOutputDefinition_Numeric(
    min_value=0.0, max_value=1.0, score_reasoning_instructions="One sentence on why."
)
created = evaluators.create(request=CreateEvaluatorRequest_LlmAsJudge(
    name="sdk-helpfulness",
    description="Is the answer helpful?",
    prompt=[
        EvaluatorChatMessage(role="system", content="You grade answers strictly."),
        EvaluatorChatMessage(role="user", content="SDK-JUDGE Question: {{question}}\nAnswer: {{answer}}"),
    ],
    model_config_=EvaluatorModelConfig(provider="local", model="judge-small"),
    variable_mapping=mapping,
    output_definition=output,
))
seen["created"] = shown(created)
changed = evaluators.update(created.id, request=UpdateLlmAsJudgeEvaluatorRequest(
    prompt=[
        EvaluatorChatMessage(role="system", content="You grade answers strictly."),
        EvaluatorChatMessage(role="user", content="SDK-JUDGE v2 Question: {{question}}\nAnswer: {{answer}}"),
    ],
    model_config_=EvaluatorModelConfig(provider="local", model="judge-small"),
    variable_mapping=mapping,
    output_definition=output,
))
seen["changed"] = shown(changed)
renamed = evaluators.update(created.id, request=UpdateEvaluatorMetadataRequest(name="sdk-helpful"))
seen["renamed"] = shown(renamed)
seen["versions"] = [v.version for v in evaluators.list_versions(created.id).data]
first_page = evaluators.list_versions(created.id, limit=1)
seen["versions_paged"] = [
    first_page.data[0].version,
    evaluators.list_versions(created.id, limit=1, cursor=first_page.meta.cursor).data[0].version,
]

rule = rules.create(
    name="production generations",
    enabled=True,
    sampling=1.0,
    filter=[
        EvaluationRuleFilter_StringOptions(column="type", operator="any of", value=["GENERATION"]),
        EvaluationRuleFilter_StringOptions(column="environment", operator="any of", value=["production"]),
    ],
    evaluator_assignments=[EvaluationRuleEvaluatorAssignmentInput(evaluator_id=created.id)],
)
seen["rule"] = shown(rule)
seen["rules"] = [r.id for r in rules.list().data]
seen["rule_again"] = shown(rules.get(rule.id))
seen["rule_sampled"] = rules.update(rule.id, sampling=1.0, name="production generations (all)").name
seen["evaluator_rules"] = [a.evaluation_rule_id for a in evaluators.get(created.id).evaluation_rule_assignments]
seen["evaluators"] = [e.name for e in evaluators.list().data]

seen["code"] = status_of(lambda: evaluators.create(request=CreateEvaluatorRequest_Code(
    name="code", source_code="def evaluate(): pass", source_code_language="PYTHON")))
seen["unmapped"] = status_of(lambda: evaluators.create(request=CreateEvaluatorRequest_LlmAsJudge(
    name="unmapped", prompt="Judge {{question}} and {{answer}}",
    variable_mapping=[PromptVariableMappingInput(variable="question", source="input")],
    output_definition=output)))
seen["bad_filter"] = status_of(lambda: rules.create(
    name="bad", enabled=True,
    filter=[EvaluationRuleFilter_StringOptions(column="nope", operator="any of", value=["x"])],
    evaluator_assignments=[EvaluationRuleEvaluatorAssignmentInput(evaluator_id=created.id)]))
seen["nested_path"] = status_of(lambda: evaluators.create(request=CreateEvaluatorRequest_LlmAsJudge(
    name="nested", prompt="Judge {{question}}",
    variable_mapping=[PromptVariableMappingInput(
        variable="question", source="input", json_path="$[?" + "(" * 1000 + "@.a" + ")" * 1000 + "]")],
    output_definition=output)))
seen["many_filters"] = status_of(lambda: rules.create(
    name="many", enabled=False,
    filter=[EvaluationRuleFilter_StringOptions(column="name", operator="any of", value=[str(i)]) for i in range(51)],
    evaluator_assignments=[]))
seen["missing"] = status_of(lambda: evaluators.get("00000000-0000-0000-0000-000000000000"))
print(json.dumps(seen, default=str))
