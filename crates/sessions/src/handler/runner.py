# Runs a Lambda-style Python handler once: `handler(event, context)` from
# the given source, its return value (or the error it raised) written as
# JSON to RESULT. The server prepends SOURCE, EVENT, RESULT, REQUEST_ID,
# MEMORY_MB and DEADLINE_MS as literals, and lambda.py.
import json
import sys
import types


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
    _context = LambdaContext("sbx-session", REQUEST_ID, MEMORY_MB, DEADLINE_MS)
    _write({"ok": _handler(EVENT, _context)})
except Exception as error:
    traceback.print_exc()
    _write({"error": lambda_error(error)})
    sys.exit(1)
