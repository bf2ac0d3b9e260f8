// Runs a Lambda-style Node.js handler, `export async function handler(event,
// context)` (ES module) or `exports.handler = …` (CommonJS, callbacks
// included), its result (or the error it threw) written as JSON to RESULT.
// The server prepends SOURCE, EVENT, RESULT, REQUEST_ID, MEMORY_MB and
// DEADLINE_MS as literals.
const fs = require("fs");

const write = (payload) => fs.writeFileSync(RESULT, JSON.stringify(payload));
const context = {
  functionName: "sbx-session",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:sandbox:000000000000:function:sbx-session",
  memoryLimitInMB: String(MEMORY_MB),
  awsRequestId: REQUEST_ID,
  logGroupName: "/aws/lambda/sbx-session",
  logStreamName: REQUEST_ID,
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, DEADLINE_MS - Date.now()),
};

(async () => {
  try {
    const esm = /^\s*export\s/m.test(SOURCE);
    const file = esm ? "/tmp/handler.mjs" : "/tmp/handler.cjs";
    fs.writeFileSync(file, SOURCE);
    const loaded = await import(file);
    const handler = loaded.handler ?? loaded.default?.handler;
    if (typeof handler !== "function") {
      throw new TypeError("the code exports no function named handler");
    }
    const result =
      handler.length >= 3
        ? await new Promise((resolve, reject) =>
            handler(EVENT, context, (error, value) => (error ? reject(error) : resolve(value))),
          )
        : await handler(EVENT, context);
    write({ ok: result === undefined ? null : result });
  } catch (error) {
    console.error(error);
    const stack = String(error?.stack ?? "").split("\n").slice(1);
    write({
      error: {
        errorType: error?.name ?? "Error",
        errorMessage: String(error?.message ?? error),
        stackTrace: stack.map((line) => line.trim()),
      },
    });
    process.exitCode = 1;
  }
})();
