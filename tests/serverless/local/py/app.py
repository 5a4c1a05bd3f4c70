import os
import time


def handler(event, context):
    if event.get("fail"):
        raise ValueError("bad input: " + str(event["fail"]))
    if "hold" in event:
        # how many invocations run at once: each holds a file in a shared directory a while
        mine = os.path.join(event["hold"], str(os.getpid()))
        open(mine, "w").close()
        active = len(os.listdir(event["hold"]))
        time.sleep(0.05)
        os.remove(mine)
        return {"pid": os.getpid(), "active": active}
    if event.get("crash"):
        print("crashing on purpose", flush=True)
        os._exit(7)
    return {"event": event, "pid": os.getpid(), "request_id": context.aws_request_id,
            "left_ms": context.get_remaining_time_in_millis(),
            "stage": os.environ.get("STAGE"), "arn": context.invoked_function_arn}
