import os


def handler(event, context):
    if event.get("fail"):
        raise ValueError("bad input: " + str(event["fail"]))
    if event.get("crash"):
        print("crashing on purpose", flush=True)
        os._exit(7)
    return {"event": event, "pid": os.getpid(), "request_id": context.aws_request_id,
            "left_ms": context.get_remaining_time_in_millis(),
            "stage": os.environ.get("STAGE"), "arn": context.invoked_function_arn}
