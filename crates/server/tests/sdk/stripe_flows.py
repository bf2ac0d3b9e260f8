"""Stripe's official Python SDK, unchanged, against `sbx mock` of Stripe's
published OpenAPI document: the flows its users run first. Exits non-zero
with the failing step named. Usage: stripe_flows.py BASE_URL"""

import sys
import urllib.request

import stripe

stripe.api_key = "sk_test_sdk"
stripe.api_base = sys.argv[1]
stripe.max_network_retries = 0


def check(condition, message):
    if not condition:
        raise AssertionError(message)


# Customers with metadata: nested form keys round-trip as structured values.
customer = stripe.Customer.create(
    email="jenny.rosen@example.com",
    name="Jenny Rosen",
    metadata={"order_id": "6735", "tier": "gold"},
)
check(customer.object == "customer", f"a customer: {customer.object}")
check(customer.email == "jenny.rosen@example.com", f"email kept: {customer.email}")
check(
    customer.metadata.to_dict() == {"order_id": "6735", "tier": "gold"},
    f"metadata kept: {customer.metadata}",
)
again = stripe.Customer.retrieve(customer.id)
check(again.id == customer.id, "the customer reads back")
check(again.metadata["tier"] == "gold", "its metadata reads back")
updated = stripe.Customer.modify(customer.id, metadata={"tier": "platinum"})
check(updated.metadata["tier"] == "platinum", f"metadata updated: {updated.metadata}")

# Payment intents: arrays (payment_method_types[0]) and idempotency.
intent = stripe.PaymentIntent.create(
    amount=2000,
    currency="usd",
    customer=customer.id,
    payment_method_types=["card"],
    idempotency_key="order-6735",
)
check(intent.object == "payment_intent", f"a payment intent: {intent.object}")
check(intent.amount == 2000 and intent.currency == "usd", "amount and currency kept")
check(intent.payment_method_types == ["card"], f"types kept: {intent.payment_method_types}")
retry = stripe.PaymentIntent.create(
    amount=2000,
    currency="usd",
    customer=customer.id,
    payment_method_types=["card"],
    idempotency_key="order-6735",
)
check(retry.id == intent.id, "a retry with the same key replays the first answer")
check(
    retry.last_response.headers.get("Idempotent-Replayed") == "true",
    "the replay is marked",
)
try:
    stripe.PaymentIntent.create(amount=999, currency="usd", idempotency_key="order-6735")
    raise AssertionError("the key reused with another request is refused")
except stripe.IdempotencyError as error:
    check(error.http_status == 400, f"IdempotencyError is a 400: {error.http_status}")

# Recurring prices: nested objects (recurring[interval], product_data[name]).
price = stripe.Price.create(
    unit_amount=1500,
    currency="eur",
    recurring={"interval": "month", "interval_count": 3},
    product_data={"name": "Gold plan"},
)
check(price.object == "price", f"a price: {price.object}")
check(price.unit_amount == 1500, f"unit amount kept: {price.unit_amount}")
check(price.recurring.interval == "month", f"interval kept: {price.recurring}")
check(price.recurring.interval_count == 3, f"interval count kept: {price.recurring}")

# Auto-pagination walks every page with starting_after, inside the sandbox.
for index in range(5):
    stripe.Customer.create(email=f"page{index}@example.com")
emails = [c.email for c in stripe.Customer.list(limit=2).auto_paging_iter()]
check(len(emails) == 6, f"auto-pagination sees every customer once: {emails}")
check(len(set(emails)) == 6, f"no customer twice: {emails}")

# Errors: the SDK classifies them by status and the error's members.
try:
    stripe.PaymentIntent.create(currency="usd")
    raise AssertionError("a missing amount is refused")
except stripe.InvalidRequestError as error:
    check(error.http_status == 400, f"400: {error.http_status}")
    check(error.param == "amount", f"param names the missing member: {error.param}")
    check(error.code == "parameter_missing", f"code: {error.code}")
    # Its doc_url is the sandbox's own page about the failure.
    doc_url = error.error.doc_url
    check(doc_url.startswith(sys.argv[1]), f"doc_url inside the sandbox: {doc_url}")
    with urllib.request.urlopen(doc_url) as page:
        html = page.read().decode()
    check("Missing parameter" in html, f"the docs page explains it: {html[:200]}")
try:
    stripe.Customer.retrieve("cus_doesnotexist")
    raise AssertionError("an unknown customer is a 404")
except stripe.InvalidRequestError as error:
    check(error.http_status == 404, f"404: {error.http_status}")
    check(error.code == "resource_missing", f"code: {error.code}")
try:
    stripe.Customer.create(balance="lots")
    raise AssertionError("a malformed integer is refused")
except stripe.InvalidRequestError as error:
    check(error.param == "balance", f"param: {error.param}")

deleted = stripe.Customer.delete(customer.id)
check(deleted.deleted is True, f"deleted: {deleted}")
print("stripe flows: ok")
