"""A Lambda function in Python for cbx's local backend: a one-line stock report from the rows
and the value the flow examples/flows/stock_pipeline.yaml computed."""


def handler(event, context):
    rows = event.get("rows") or []
    top = max(rows, key=lambda r: r["qty"]) if rows else None
    value = float(event.get("value") or 0)
    line = "%d items in %d kinds worth %.2f; most: %s" % (
        sum(r["qty"] for r in rows), len(rows), value, top["name"] if top else "-")
    return {"report": line, "value": value, "request_id": context.aws_request_id}
