// A webhook's page: the delivery log is re-fetched every few seconds while
// the page is visible (a test event or a retry shows up without a reload),
// for ten minutes after the page was opened.
const rows = document.getElementById("delivery-rows");
const INTERVAL = 4000;
const UNTIL = Date.now() + 10 * 60 * 1000;

async function refresh() {
  if (document.visibilityState === "visible") {
    try {
      const reply = await fetch(rows.dataset.url, { credentials: "same-origin", cache: "no-store" });
      if (reply.ok) rows.innerHTML = await reply.text();
    } catch {
      // Keep the log as it is; the next turn tries again.
    }
  }
  if (Date.now() < UNTIL) window.setTimeout(refresh, INTERVAL);
}

if (rows) window.setTimeout(refresh, INTERVAL);
