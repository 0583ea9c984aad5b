// Confirmation before an action that ends or cuts a live broadcast: a native
// modal <dialog> (templates/_confirm_dialog.html) that names the consequence.
// Focus starts on Cancel; Escape cancels.
//
// Forms opt in with data attributes, read when they are submitted:
//   data-confirm        asked always (e.g. deleting a stream)
//   data-confirm-live   asked instead while the stream is live or reconnecting
//   data-confirm-title, data-confirm-ok   the dialog's heading and button
// The stream's status is the `data-status` of the page's [data-stream]
// element, which the page keeps current from the stream's websocket.

// Resolves true when the person confirms, false when they cancel.
export function confirmAction({ title = "Are you sure?", message, ok = "Confirm" }) {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog || typeof dialog.showModal !== "function") {
    return Promise.resolve(window.confirm(message));
  }
  dialog.querySelector("[data-testid='confirm-title']").textContent = title;
  dialog.querySelector("[data-testid='confirm-message']").textContent = message;
  dialog.querySelector("[data-testid='confirm-ok']").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("[data-testid='confirm-cancel']").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// Live or waiting for its publisher to reconnect: a broadcast is under way.
export function broadcastUnderWay(scope = document) {
  const status = scope.querySelector("[data-stream]")?.dataset.status;
  return status === "live" || status === "reconnecting";
}

for (const form of document.querySelectorAll("form[data-confirm], form[data-confirm-live]")) {
  form.addEventListener("submit", async (event) => {
    const message = (broadcastUnderWay() && form.dataset.confirmLive) || form.dataset.confirm;
    if (!message || form.dataset.confirmed === "true") return;
    event.preventDefault();
    const confirmed = await confirmAction({
      title: form.dataset.confirmTitle,
      message,
      ok: form.dataset.confirmOk,
    });
    if (!confirmed) return;
    form.dataset.confirmed = "true";
    form.submit();
  });
}
