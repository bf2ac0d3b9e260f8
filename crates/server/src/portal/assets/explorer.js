// The API explorer: each operation's form sends its request from this
// browser to the sandbox (same origin, the key where the spec wants it),
// then shows the answer and, from the request log, the contract verdict,
// the explanation and ready-to-run snippets.

const { keyStore } = await import(new URL(`portal.js${new URL(import.meta.url).search}`, import.meta.url));

const settings = document.querySelector("[data-explorer]");
const sandbox = settings.dataset.sandbox;
const baseUrl = settings.dataset.baseUrl;
const keyInput = document.getElementById("x-key");
keyInput.value = keyStore.get(sandbox);
keyInput.addEventListener("change", () => keyStore.set(sandbox, keyInput.value.trim()));

const logUrl = (requestId, suffix = "") =>
  `/api/v1/sandboxes/${encodeURIComponent(sandbox)}/logs/${encodeURIComponent(requestId)}${suffix}`;

/** The request a form describes: URL, method, headers, body. */
function requestOf(form) {
  let path = form.dataset.path;
  const query = new URLSearchParams();
  const headers = new Headers();
  for (const input of form.querySelectorAll("[data-param]")) {
    const value = input.value;
    if (value === "") continue;
    const name = input.dataset.param;
    switch (input.dataset.in) {
      case "path": path = path.replace(`{${name}}`, encodeURIComponent(value)); break;
      case "query": query.append(name, value); break;
      case "header": headers.set(name, value); break;
    }
  }
  const key = keyInput.value.trim();
  if (key) {
    const where = form.dataset.keyIn;
    const name = form.dataset.keyName;
    if (where === "bearer") headers.set("Authorization", `Bearer ${key}`);
    else if (where === "basic") headers.set("Authorization", `Basic ${btoa(`${key}:`)}`);
    else if (where === "header") headers.set(name, key);
    else if (where === "query") query.append(name, key);
  }
  const scenario = form.querySelector("[data-scenario]").value;
  if (scenario) headers.set("X-Sandbox-Scenario", scenario);
  const prefer = form.querySelector("[data-prefer]").value;
  if (prefer) headers.set("Prefer", prefer);
  const bodyInput = form.querySelector("[data-body]");
  let body;
  if (bodyInput && bodyInput.value.trim() !== "") {
    body = bodyInput.value;
    headers.set("Content-Type", form.dataset.mediaType || "application/json");
  }
  const search = query.toString();
  return { url: `${baseUrl}${path}${search ? `?${search}` : ""}`, method: form.dataset.method, headers, body };
}

function pretty(text, contentType) {
  if (!/json/.test(contentType || "")) return text;
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

/** The log entry of a request: written a moment after the answer. */
async function logEntry(requestId) {
  for (let attempt = 0; attempt < 10; attempt++) {
    const response = await fetch(logUrl(requestId), { credentials: "same-origin" });
    if (response.ok) return response.json();
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  return null;
}

function verdictOf(entry) {
  if (!entry) return "no log entry (yet)";
  const errors = entry.validation_errors || [];
  if (!errors.length) return "contract: valid";
  return `contract: ${errors.length} violation${errors.length === 1 ? "" : "s"} — ${errors.map((e) => e.message).join("; ")}`;
}

async function send(form) {
  const result = form.nextElementSibling;
  const field = (name) => result.querySelector(`[data-${name}]`);
  const request = requestOf(form);
  result.hidden = false;
  field("status").textContent = "Sending…";
  field("status").className = "";
  field("timing").textContent = "";
  field("verdict").textContent = "";
  field("snippet-text").hidden = true;
  const started = performance.now();
  let response;
  try {
    response = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body, credentials: "omit" });
  } catch (error) {
    field("status").textContent = `Failed to send: ${error.message}`;
    field("status").className = "status-bad";
    return;
  }
  const text = await response.text();
  const elapsed = Math.round(performance.now() - started);
  field("status").textContent = `${response.status} ${response.statusText}`;
  field("status").className = response.ok ? "status-ok" : "status-bad";
  field("timing").textContent = `· ${elapsed} ms`;
  field("headers").textContent = [...response.headers].map(([name, value]) => `${name}: ${value}`).join("\n");
  field("response-body").textContent = pretty(text, response.headers.get("content-type"));
  const requestId = response.headers.get("x-request-id");
  result.dataset.requestId = requestId || "";
  const explain = result.querySelector("[data-explain]");
  explain.href = requestId
    ? `/portal/sandboxes/${encodeURIComponent(sandbox)}/logs/${encodeURIComponent(requestId)}`
    : "#";
  if (requestId) field("verdict").textContent = `· ${verdictOf(await logEntry(requestId))}`;
}

async function showSnippet(result, language) {
  const out = result.querySelector("[data-snippet-text]");
  const requestId = result.dataset.requestId;
  if (!requestId) return;
  const response = await fetch(logUrl(requestId, "/snippets"), { credentials: "same-origin" });
  if (!response.ok) {
    out.textContent = `No snippet: ${response.status}`;
  } else {
    const snippets = await response.json();
    out.textContent = snippets[language];
    try { await navigator.clipboard.writeText(snippets[language]); } catch { /* shown below; copy by hand */ }
  }
  out.hidden = false;
}

for (const form of document.querySelectorAll("form.try")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(form);
  });
  const result = form.nextElementSibling;
  for (const button of result.querySelectorAll("[data-snippet]")) {
    button.addEventListener("click", () => showSnippet(result, button.dataset.snippet));
  }
}
