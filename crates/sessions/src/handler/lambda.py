# What every Python handler gets, whether run once (runner.py) or served
# by a long-lived worker (worker.py): Lambda's context object, and
# Lambda's shape for an error.
import time
import traceback


class LambdaContext:
    function_version = "$LATEST"

    def __init__(self, function_name, request_id, memory_mb, deadline_ms):
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:sandbox:000000000000:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.aws_request_id = request_id
        self.log_stream_name = request_id
        self.memory_limit_in_mb = memory_mb
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def lambda_error(error, error_type=None):
    return {
        "errorType": error_type or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": [line.rstrip() for line in traceback.format_tb(error.__traceback__)],
    }
