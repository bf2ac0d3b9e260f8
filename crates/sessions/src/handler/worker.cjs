// A function behaviour's worker: a long-lived Node.js process in the
// sandbox's session that loads /workspace/functions/<name>.js (.mjs, .cjs)
// once and calls its handler for each invocation, as a warm Lambda
// execution environment does (module-level state lives between calls).
//
// Invocations arrive one per line on stdin as JSON {id, name, event,
// deadline_ms}, served one at a time; each answer is one line of JSON {id,
// ok | error, logs} written to descriptor 1. What the handler writes to
// process.stdout or stderr (console.log…) is captured as that
// invocation's logs. The server prepends MEMORY_MB and lambda.cjs.
const fs = require("fs");
const readline = require("readline");

const MAX_LOG_CHARS = 64 * 1024;
const handlers = new Map();
let logs = null;
const hostStderr = process.stderr.write.bind(process.stderr);
const capture = (chunk, encoding, done) => {
  const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
  if (logs === null) hostStderr(text);
  else logs.push(text);
  const callback = typeof encoding === "function" ? encoding : done;
  if (typeof callback === "function") callback();
  return true;
};
process.stdout.write = capture;
process.stderr.write = capture;
process.on("uncaughtException", (error) => console.error(error));
process.on("unhandledRejection", (error) => console.error(error));

class Failure extends Error {
  constructor(payload) {
    super(payload.errorMessage);
    this.payload = payload;
  }
}

async function handlerOf(name) {
  if (!handlers.has(name)) {
    const file = [".mjs", ".cjs", ".js"]
      .map((extension) => `/workspace/functions/${name}${extension}`)
      .find((path) => fs.existsSync(path));
    let handler;
    try {
      handler = await loadHandler(file);
    } catch (error) {
      console.error(error);
      throw new Failure(lambdaError(error, "Runtime.ImportModuleError"));
    }
    if (typeof handler !== "function") {
      throw new Failure({
        errorType: "Runtime.HandlerNotFound",
        errorMessage: `functions/${name} exports no function named handler`,
        stackTrace: [],
      });
    }
    handlers.set(name, handler);
  }
  return handlers.get(name);
}

// Descriptor 1 may be non-blocking: a long answer is written in parts.
function writeAll(text) {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += fs.writeSync(1, bytes, offset);
    } catch (error) {
      if (error.code !== "EAGAIN") throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

async function serve(request) {
  logs = [];
  let answer;
  try {
    const handler = await handlerOf(request.name);
    const context = lambdaContext(request.name, request.id, MEMORY_MB, request.deadline_ms);
    const result = await callHandler(handler, request.event, context);
    answer = { ok: result === undefined ? null : result };
  } catch (error) {
    if (error instanceof Failure) {
      answer = { error: error.payload };
    } else {
      console.error(error);
      answer = { error: lambdaError(error) };
    }
  }
  answer.id = request.id;
  answer.logs = logs.join("").slice(-MAX_LOG_CHARS);
  logs = null;
  let text;
  try {
    text = JSON.stringify(answer);
  } catch (error) {
    delete answer.ok;
    answer.error = lambdaError(error, "Runtime.MarshalError");
    text = JSON.stringify(answer);
  }
  writeAll(text + "\n");
}

let queue = Promise.resolve();
readline
  .createInterface({ input: process.stdin })
  .on("line", (line) => {
    queue = queue.then(() => serve(JSON.parse(line)));
  })
  .on("close", () => queue.then(() => process.exit(0)));
