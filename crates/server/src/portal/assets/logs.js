// The request log's live tail: new requests (server-sent events from the
// control plane's stream, with the page's filters) are added at the top.

const toggle = document.querySelector("[data-live-tail]");
const rows = document.querySelector("[data-log-rows]");
let source = null;

function cell(content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function rowOf(entry) {
  const link = document.createElement("a");
  link.href = `/portal/sandboxes/${encodeURIComponent(rows.dataset.sandbox)}/logs/${encodeURIComponent(entry.request_id)}`;
  const method = document.createElement("span");
  method.className = `method m-${entry.method.toLowerCase()}`;
  method.textContent = entry.method;
  link.append(method, ` ${entry.path}`);
  const time = document.createElement("time");
  time.dateTime = entry.at;
  time.textContent = entry.at;
  const errors = entry.validation_errors || [];
  const tr = document.createElement("tr");
  tr.append(
    cell(time),
    cell(link),
    cell(String(entry.status), entry.status >= 400 ? "status-bad" : "status-ok"),
    cell(`${entry.latency_ms} ms`),
    cell(errors.length ? `${errors.length} violation${errors.length === 1 ? "" : "s"}` : "valid"),
    cell(entry.scenario || ""),
  );
  return tr;
}

toggle.addEventListener("change", () => {
  if (!toggle.checked) {
    source?.close();
    source = null;
    delete toggle.dataset.following;
    return;
  }
  source = new EventSource(toggle.dataset.stream);
  // Tells a watcher (and the browser test) the tail is following.
  source.addEventListener("open", () => { toggle.dataset.following = "yes"; });
  source.addEventListener("request", (event) => {
    rows.querySelector("[data-empty]")?.remove();
    rows.prepend(rowOf(JSON.parse(event.data)));
  });
});
