// Copy buttons: <button data-copy="#element-id"> copies that element's text.
for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    if (source.dataset.masked === "true") {
      document.getElementById("reveal-key")?.click();
      return;
    }
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  button.disabled = false; // rendered disabled: a click before this script ran did nothing
}
