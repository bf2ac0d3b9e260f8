// What every portal page gains with scripts on: copy buttons, confirmations
// before destructive forms, live expiry countdowns, and remembering a key
// shown once so the explorer can use it. Pages work without it.

/** The key the explorer uses for a sandbox, kept in this browser only. */
export const keyStore = {
  get: (sandbox) => localStorage.getItem(`sbx-key:${sandbox}`) || "",
  set: (sandbox, key) => localStorage.setItem(`sbx-key:${sandbox}`, key),
};

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

/** "in 6 days 23 hours", from a number of seconds. */
export function inWords(seconds) {
  if (seconds <= 0) return "now";
  const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  const parts = [];
  let left = Math.floor(seconds);
  for (const [size, name] of units) {
    const count = Math.floor(left / size);
    if (count > 0) {
      parts.push(`${count} ${name}${count === 1 ? "" : "s"}`);
      left -= count * size;
    } else if (parts.length) break;
    if (parts.length === 2) break;
  }
  return `in ${parts.join(" ")}`;
}

function countdowns() {
  const clocks = document.querySelectorAll("time[data-countdown]");
  if (!clocks.length) return;
  const tick = () => {
    for (const time of clocks) {
      const left = (Date.parse(time.dateTime) - Date.now()) / 1000;
      time.textContent = inWords(left);
      time.title = time.dateTime;
    }
  };
  tick();
  setInterval(tick, 30_000);
}

function rememberRevealedKey() {
  const reveal = document.querySelector("[data-reveal-key]");
  const key = reveal && document.getElementById("new-key");
  if (key && reveal.dataset.kind === "secret") keyStore.set(reveal.dataset.sandbox, key.textContent.trim());
}

copyButtons();
confirmations();
countdowns();
rememberRevealedKey();
