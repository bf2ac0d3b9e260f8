// The code console: a running run's output, followed on its event stream
// (the control plane's server-sent events, resumable) as it arrives.

const output = document.querySelector("[data-output][data-stream]");
const status = document.querySelector("[data-run-status]");

if (output) {
  // What the page was rendered with is replayed by the stream from the
  // start, so it is replaced, not added to.
  output.textContent = "";
  const source = new EventSource(output.dataset.stream);
  const append = (text, className) => {
    const span = document.createElement("span");
    if (className) span.className = className;
    span.textContent = text;
    output.append(span);
  };
  source.addEventListener("stdout", (event) => append(JSON.parse(event.data).data));
  source.addEventListener("stderr", (event) => append(JSON.parse(event.data).data, "stderr"));
  source.addEventListener("end", (event) => {
    const end = JSON.parse(event.data);
    status.textContent = `${end.status}${end.exit_code === null ? "" : ` (exit ${end.exit_code})`}`;
    // Tells a reader (and the browser test) the run is over.
    output.dataset.ended = end.status;
    source.close();
  });
}
