"""The Langfuse Python SDK's (v5, unmodified) annotation queues and comments.

    python3 langfuse_annotation_queues.py BASE_URL PUBLIC_KEY SECRET_KEY PROJECT_ID USER_ID TRACE_ID...

Creates a boolean score config and a queue with it, adds the traces as items (one twice),
lists, reads and completes one, assigns USER_ID, comments on the first trace and reads the
comments back. Prints what it saw as JSON on the last line.
"""
import json
import sys

from langfuse import Langfuse
from langfuse.api import AnnotationQueueObjectType, AnnotationQueueStatus, ScoreConfigDataType

base_url, public_key, secret_key, project_id, user_id = sys.argv[1:6]
traces = sys.argv[6:]
langfuse = Langfuse(public_key=public_key, secret_key=secret_key, base_url=base_url)
queues = langfuse.api.annotation_queues
seen = {}

config = langfuse.api.score_configs.create(name="correct", data_type=ScoreConfigDataType.BOOLEAN)
queue = queues.create_queue(name="review", description="Did the agent get it right?", score_config_ids=[config.id])
seen["queue"] = queue.dict(by_alias=True)
seen["config_id"] = config.id
for trace in traces:
    queues.create_queue_item(queue.id, object_id=trace, object_type=AnnotationQueueObjectType.TRACE)
again = queues.create_queue_item(queue.id, object_id=traces[0], object_type=AnnotationQueueObjectType.TRACE)
items = queues.list_queue_items(queue.id, page=1, limit=100)
seen["items"] = [i.object_id for i in items.data]
seen["again_is_first"] = again.id == items.data[0].id
seen["total"] = items.meta.total_items
done = queues.update_queue_item(queue.id, items.data[-1].id, status=AnnotationQueueStatus.COMPLETED)
seen["completed"] = {"status": done.status, "has_completed_at": done.completed_at is not None}
seen["pending"] = [i.object_id for i in queues.list_queue_items(queue.id, status=AnnotationQueueStatus.PENDING).data]
seen["got"] = queues.get_queue_item(queue.id, items.data[0].id).object_id
seen["listed_queues"] = [q.name for q in queues.list_queues().data]
seen["assigned"] = queues.create_queue_assignment(queue.id, user_id=user_id).user_id
seen["removed"] = queues.delete_queue_item(queue.id, items.data[-1].id).success

comment = langfuse.api.comments.create(project_id=project_id, object_type="TRACE", object_id=traces[0],
                                       content="The agent **skipped** the tests.", author_user_id=user_id)
seen["comment"] = langfuse.api.comments.get_by_id(comment.id).dict(by_alias=True)
seen["comments_of_trace"] = [c.content for c in langfuse.api.comments.get(object_type="TRACE", object_id=traces[0]).data]
for name, call in {
    "queue_without_configs": lambda: queues.create_queue(name="empty", score_config_ids=[]),
    "same_name": lambda: queues.create_queue(name="review", score_config_ids=[config.id]),
    "comment_elsewhere": lambda: langfuse.api.comments.create(
        project_id="00000000-0000-0000-0000-000000000000", object_type="TRACE", object_id=traces[0], content="x"),
    "empty_comment": lambda: langfuse.api.comments.create(
        project_id=project_id, object_type="TRACE", object_id=traces[0], content=""),
    "bad_object_type": lambda: queues.create_queue_item(queue.id, object_id="x", object_type="DATASET"),
}.items():
    try:
        call()
        seen[name] = "accepted"
    except Exception as error:  # the SDK raises on a 4xx
        seen[name] = str(getattr(error, "status_code", error))
print(json.dumps(seen, default=str))
