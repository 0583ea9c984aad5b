// The Share button of watch and replay pages: the device's share sheet on a
// touch screen, else the page's link copied to the clipboard.
const button = document.querySelector("[data-share]");
if (button) {
  const label = button.textContent;
  let reset = null;
  const say = (text) => {
    button.textContent = text;
    clearTimeout(reset);
    reset = setTimeout(() => { button.textContent = label; }, 2000);
  };
  button.addEventListener("click", async () => {
    const url = button.dataset.share;
    if (navigator.share && window.matchMedia("(pointer: coarse)").matches) {
      try {
        await navigator.share({ title: document.title, url });
        return;
      } catch (error) {
        if (error.name === "AbortError") return; // the viewer closed the sheet
      }
    }
    try {
      await navigator.clipboard.writeText(url);
      say("Link copied");
    } catch {
      window.prompt("Copy this link:", url);
    }
  });
  button.hidden = false; // rendered hidden: it does nothing without this script
}
