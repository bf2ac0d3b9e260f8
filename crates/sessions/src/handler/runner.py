# Runs a Lambda-style Python handler: `handler(event, context)` from the
# given source, its return value (or the error it raised) written as JSON
# to RESULT. The server prepends SOURCE, EVENT, RESULT, REQUEST_ID,
# MEMORY_MB and DEADLINE_MS as literals.
import json
import sys
import time
import traceback
import types


class LambdaContext:
    function_name = "sbx-session"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:sandbox:000000000000:function:sbx-session"
    log_group_name = "/aws/lambda/sbx-session"

    def __init__(self):
        self.aws_request_id = REQUEST_ID
        self.log_stream_name = REQUEST_ID
        self.memory_limit_in_mb = MEMORY_MB

    def get_remaining_time_in_millis(self):
        return max(0, int(DEADLINE_MS - time.time() * 1000))


def _write(payload):
    with open(RESULT, "w") as out:
        json.dump(payload, out)


_module = types.ModuleType("handler")
_module.__file__ = "/workspace/handler.py"
sys.modules["handler"] = _module
try:
    exec(compile(SOURCE, "handler.py", "exec"), _module.__dict__)
    _handler = getattr(_module, "handler", None)
    if not callable(_handler):
        raise AttributeError("the code defines no function named handler")
    _write({"ok": _handler(EVENT, LambdaContext())})
except Exception as error:
    traceback.print_exc()
    _write({"error": {
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": [line.rstrip() for line in traceback.format_tb(error.__traceback__)],
    }})
    sys.exit(1)
