// A spec's text area can be filled from a file: read in the browser, sent
// as the form's text (no upload endpoint needed).

for (const input of document.querySelectorAll("input[data-spec-file]")) {
  const target = document.getElementById(input.dataset.specFile);
  input.hidden = false;
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (file) target.value = await file.text();
  });
}
