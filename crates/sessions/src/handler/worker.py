# A function behaviour's worker: a long-lived Python process in the
# sandbox's session that imports /workspace/functions/<name>.py once and
# calls its `handler(event, context)` for each invocation, as a warm Lambda
# execution environment does (module-level state lives between calls).
#
# Invocations arrive one per line on stdin as JSON {id, name, event,
# deadline_ms}; each answer is one line of JSON {id, ok | error, logs} on
# the descriptor stdout had at start. Whatever the handler prints (or its
# module does on import) is captured as that invocation's logs. The server
# prepends MEMORY_MB and lambda.py.
import contextlib
import importlib.util
import io
import json
import os
import sys

_answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.path.insert(0, "/workspace/functions")
_handlers = {}
MAX_LOG_CHARS = 64 * 1024


def _handler(name):
    if name not in _handlers:
        path = f"/workspace/functions/{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise _Failure(lambda_error(error, "Runtime.ImportModuleError")) from error
        handler = getattr(module, "handler", None)
        if not callable(handler):
            raise _Failure({
                "errorType": "Runtime.HandlerNotFound",
                "errorMessage": f"functions/{name}.py defines no function named handler",
                "stackTrace": [],
            })
        _handlers[name] = handler
    return _handlers[name]


class _Failure(Exception):
    def __init__(self, payload):
        super().__init__(payload["errorMessage"])
        self.payload = payload


def _invoke(request):
    context = LambdaContext(request["name"], request["id"], MEMORY_MB, request["deadline_ms"])
    try:
        return {"ok": _handler(request["name"])(request["event"], context)}
    except _Failure as failure:
        traceback.print_exc()
        return {"error": failure.payload}
    except BaseException as error:  # SystemExit too: the worker lives on
        traceback.print_exc()
        return {"error": lambda_error(error)}


for _line in sys.stdin.buffer:
    _request = json.loads(_line)
    _logs = io.StringIO()
    with contextlib.redirect_stdout(_logs), contextlib.redirect_stderr(_logs):
        _answer = _invoke(_request)
    _answer["id"] = _request["id"]
    _answer["logs"] = _logs.getvalue()[-MAX_LOG_CHARS:]
    try:
        _text = json.dumps(_answer)
    except (TypeError, ValueError) as error:
        del _answer["ok"]
        _answer["error"] = lambda_error(error, "Runtime.MarshalError")
        _text = json.dumps(_answer)
    _answers.write(_text + "\n")
    _answers.flush()
