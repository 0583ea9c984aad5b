// The creator's stream page: reveal the key on demand.
const head = document.querySelector("[data-stream]");
const reveal = document.getElementById("reveal-key");

async function revealKey() {
  const reply = await fetch(head.dataset.keyUrl, { credentials: "same-origin" });
  if (!reply.ok) return;
  const settings = await reply.json();
  const fields = { "stream-key": settings.stream_key, "webrtc-url": settings.webrtc_url, "whip-url": settings.whip_url };
  for (const [id, value] of Object.entries(fields)) {
    const element = document.getElementById(id);
    element.textContent = value;
    element.dataset.masked = "false";
  }
  reveal.textContent = "Hide key";
  reveal.dataset.revealed = "true";
}

function hideKey() {
  for (const id of ["stream-key", "webrtc-url", "whip-url"]) {
    const element = document.getElementById(id);
    element.textContent = "••••••••••••••••";
    element.dataset.masked = "true";
  }
  reveal.textContent = "Reveal key";
  reveal.dataset.revealed = "false";
}

reveal?.addEventListener("click", () => (reveal.dataset.revealed === "true" ? hideKey() : revealKey()));
