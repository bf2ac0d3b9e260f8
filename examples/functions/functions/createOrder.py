# POST /orders, as a Lambda handler behind API Gateway (HTTP API, payload 2.0).
import json

from _prices import price_of

served = 0  # module state lives while the function's worker is warm


def handler(event, context):
    global served
    served += 1
    order = json.loads(event["body"])
    stage = event.get("stageVariables", {})
    limit = int(stage.get("max_quantity", "10"))
    too_many = [item["sku"] for item in order["items"] if item["quantity"] > limit]
    if too_many:
        return {
            "statusCode": 422,
            "body": json.dumps({"error": {
                "code": "quantity_too_large",
                "message": f"at most {limit} of {', '.join(too_many)}",
            }}),
        }
    total = sum(price_of(item["sku"]) * item["quantity"] for item in order["items"])
    print(f"order {context.aws_request_id}: {total} cents")
    return {
        "statusCode": 201,
        "headers": {"x-served-by-this-worker": str(served)},
        "body": json.dumps({
            "id": "ord_" + context.aws_request_id[:8],
            "status": "pending",
            "items": order["items"],
            "total_cents": total,
            "currency": stage.get("currency", "USD"),
        }),
    }
