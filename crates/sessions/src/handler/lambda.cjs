// What every Node.js handler gets, whether run once (runner.cjs) or served
// by a long-lived worker (worker.cjs): Lambda's context object, the module
// loaded as Lambda loads it, the call (callbacks included), and Lambda's
// shape for an error.

function lambdaContext(functionName, requestId, memoryMb, deadlineMs) {
  return {
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:sandbox:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: requestId,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
  };
}

// The handler of an ES module (`export …`, `.mjs`) or of CommonJS
// (`exports.handler`, `.cjs`); Node tells a `.js` file's kind by its syntax.
async function loadHandler(file) {
  const loaded = await import(file);
  return loaded.handler ?? loaded.default?.handler;
}

function callHandler(handler, event, context) {
  return handler.length >= 3
    ? new Promise((resolve, reject) =>
        handler(event, context, (error, value) => (error ? reject(error) : resolve(value))),
      )
    : handler(event, context);
}

function lambdaError(error, errorType) {
  const stack = String(error?.stack ?? "").split("\n").slice(1);
  return {
    errorType: errorType ?? error?.name ?? "Error",
    errorMessage: String(error?.message ?? error),
    stackTrace: stack.map((line) => line.trim()),
  };
}
