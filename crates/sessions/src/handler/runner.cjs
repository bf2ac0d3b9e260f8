// Runs a Lambda-style Node.js handler once, `export async function
// handler(event, context)` (ES module) or `exports.handler = …` (CommonJS,
// callbacks included), its result (or the error it threw) written as JSON
// to RESULT. The server prepends SOURCE, EVENT, RESULT, REQUEST_ID,
// MEMORY_MB and DEADLINE_MS as literals, and lambda.cjs.
const fs = require("fs");

const write = (payload) => fs.writeFileSync(RESULT, JSON.stringify(payload));

(async () => {
  try {
    const file = /^\s*export\s/m.test(SOURCE) ? "/tmp/handler.mjs" : "/tmp/handler.cjs";
    fs.writeFileSync(file, SOURCE);
    const handler = await loadHandler(file);
    if (typeof handler !== "function") {
      throw new TypeError("the code exports no function named handler");
    }
    const context = lambdaContext("sbx-session", REQUEST_ID, MEMORY_MB, DEADLINE_MS);
    const result = await callHandler(handler, EVENT, context);
    write({ ok: result === undefined ? null : result });
  } catch (error) {
    console.error(error);
    write({ error: lambdaError(error) });
    process.exitCode = 1;
  }
})();
