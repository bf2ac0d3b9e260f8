"""Twilio's official Python SDK, unchanged, against `sbx mock` of Twilio's
published OpenAPI document (api.twilio.com, 2010-04-01): send an SMS, read
it back, list, redact and delete. Twilio's SDK builds absolute URLs on
api.twilio.com; its documented extension point, a custom HTTP client,
points them at the sandbox. Usage: twilio_flows.py BASE_URL"""

import sys

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

BASE = sys.argv[1]
ACCOUNT = "AC" + "0" * 32


class SandboxHttpClient(TwilioHttpClient):
    def request(self, method, url, *args, **kwargs):
        url = url.replace("https://api.twilio.com", BASE)
        return super().request(method, url, *args, **kwargs)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


client = Client(ACCOUNT, "token", http_client=SandboxHttpClient())

sent = client.messages.create(to="+15558675310", from_="+15017122661", body="Hello there")
check(sent.sid.startswith(("SM", "MM")) and len(sent.sid) == 34, f"a message sid: {sent.sid}")
check(sent.to == "+15558675310", f"to kept: {sent.to}")
check(sent.from_ == "+15017122661", f"from kept: {sent.from_}")
check(sent.body == "Hello there", f"body kept: {sent.body}")

fetched = client.messages(sent.sid).fetch()
check(fetched.sid == sent.sid, "the message reads back")
check(fetched.body == "Hello there", f"its body reads back: {fetched.body}")

for index in range(3):
    client.messages.create(to=f"+1555000000{index}", from_="+15017122661", body=f"n{index}")
listed = client.messages.list(limit=20)
sids = [m.sid for m in listed]
check(sent.sid in sids and len(sids) == 4, f"the list holds the four messages: {sids}")

redacted = client.messages(sent.sid).update(body="")
check(redacted.body == "", f"the body is redacted: {redacted.body!r}")

check(client.messages(sent.sid).delete() is True, "the message is deleted")
try:
    client.messages(sent.sid).fetch()
    raise AssertionError("a deleted message is gone")
except TwilioRestException as error:
    check(error.status == 404, f"404: {error.status}")
print("twilio flows: ok")
