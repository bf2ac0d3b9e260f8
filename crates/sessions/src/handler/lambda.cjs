// What every Node.js handler gets, whether run once (runner.cjs) or served
// by a long-lived worker (worker.cjs): Lambda's context object, the module
// loaded as Lambda loads it, the call (callbacks included), and Lambda's
// shape for an error.
const lambdaFs = require("fs");

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

// An ES module (`export …`, or a `.mjs` file) or CommonJS (`exports.handler`,
// or a `.cjs` file), copied to `base` with the extension Node reads it by.
async function loadHandler(source, base, original = "") {
  const esm = original.endsWith(".mjs") || (!original.endsWith(".cjs") && /^\s*export\s/m.test(source));
  const file = base + (esm ? ".mjs" : ".cjs");
  lambdaFs.writeFileSync(file, source);
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
