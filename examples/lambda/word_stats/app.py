"""A Lambda function in Python for cbx's local backend: counts the words of event["text"]."""
import collections
import os


def handler(event, context):
    words = str(event.get("text", "")).lower().split()
    top = collections.Counter(words).most_common(int(event.get("top", 3)))
    return {"words": len(words), "top": [{"w": w, "n": n} for w, n in top],
            "stage": os.environ.get("STAGE", ""), "request_id": context.aws_request_id}
