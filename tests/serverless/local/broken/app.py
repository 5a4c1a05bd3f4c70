import module_that_does_not_exist  # noqa: F401 - an init error on purpose


def handler(event, context):
    return event
