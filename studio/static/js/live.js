// Shared by the creator's stream page and the watch page: the stream's
// websocket (with reconnect) and live re-fetching of server-rendered lists.

const POLICY_VIOLATION = 1008; // the server's "unknown stream": do not retry
const TRY_AGAIN_LATER = 1013; // too many sockets from this address (nginx's limit)
const RETRY_FIRST_MS = 1000;
const RETRY_CROWDED_MS = 15000;
const RETRY_MAX_MS = 30000;

// ws:// or wss:// (as the page itself) URL of a path on the studio's origin.
export function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}${path}`;
}

// Call handler(event) for each JSON message on `socket`; a message that is
// not JSON is not an event and is skipped.
export function onJsonMessage(socket, handler) {
  socket.addEventListener("message", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    handler(event);
  });
}

// Open /ws/streams/<id> and call onEvent(event) for each message. Reconnects
// with exponential backoff (and jitter, so a restarted server is not hit by
// every page at once); onConnection(open, { refused }) reports the socket's
// state, `refused` when the studio turned it away for too many sockets from
// this address (then the next try waits longer). `send(object)` sends a JSON
// frame on the open socket and says whether it could (chat, moderation).
export function watchStream(publicId, { onEvent, onConnection = () => {} }) {
  let delay = RETRY_FIRST_MS;
  let socket = null;
  let stopped = false;

  function connect() {
    socket = new WebSocket(socketUrl(`/ws/streams/${encodeURIComponent(publicId)}`));
    socket.addEventListener("open", () => {
      delay = RETRY_FIRST_MS;
      onConnection(true);
    });
    onJsonMessage(socket, onEvent);
    socket.addEventListener("close", (closed) => {
      const refused = closed.code === TRY_AGAIN_LATER;
      onConnection(false, { refused });
      if (stopped || closed.code === POLICY_VIOLATION) return;
      if (refused) delay = Math.max(delay, RETRY_CROWDED_MS);
      window.setTimeout(connect, delay + Math.random() * delay * 0.3);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    });
  }

  connect();
  return {
    send(frame) {
      if (socket?.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
    close() {
      stopped = true;
      socket?.close();
    },
  };
}

// Milliseconds to add to Date.now() to get the server's clock, from the
// `now` every event carries.
export function serverOffset(event) {
  const now = Date.parse(event.now);
  return Number.isNaN(now) ? 0 : now - Date.now();
}

// "1:02:03" / "02:03" for a duration in milliseconds.
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${minutes}:${seconds}` : `${minutes}:${seconds}`;
}

// Re-fetch a server-rendered list: `element.dataset.url` returns its new
// inner HTML. While an ended broadcast still waits for its replay
// (`[data-replay-pending]`), poll with backoff, in case the "replay" event
// was missed (a reconnecting socket, a worker without Redis).
export function listRefresher(element, { onRefreshed = () => {} } = {}) {
  let timer = null;
  let attempt = 0;

  async function refresh() {
    window.clearTimeout(timer);
    timer = null;
    try {
      const reply = await fetch(element.dataset.url, { credentials: "same-origin", cache: "no-store" });
      if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
      element.innerHTML = await reply.text();
      onRefreshed(element);
    } catch {
      // Keep the list as it is; the next event or poll tries again.
    }
    if (element.querySelector("[data-replay-pending]") && attempt < 40) {
      attempt += 1;
      timer = window.setTimeout(refresh, Math.min(1000 * attempt, 10000));
    } else {
      attempt = 0;
    }
  }

  return refresh;
}

// The status badge's words for a stream status.
export function statusLabel(status) {
  if (status === "live") return "LIVE";
  if (status === "reconnecting") return "Reconnecting…";
  return status;
}

// The creator's notice while the encoder may still reconnect: shown with
// its deadline (in the viewer's time) while `event.status` is reconnecting.
const deadlineFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function showReconnectNotice(scope, event) {
  const notice = scope.querySelector("[data-reconnect-notice]");
  if (!notice) return;
  const deadline = event.status === "reconnecting" ? Date.parse(event.reconnect_deadline) : NaN;
  notice.hidden = event.status !== "reconnecting";
  const time = notice.querySelector("[data-deadline]");
  if (!Number.isNaN(deadline)) {
    time.dateTime = new Date(deadline).toISOString();
    time.textContent = deadlineFormat.format(new Date(deadline));
  }
}

// Show a `viewers` event's count in every viewer-count element of `scope`.
export function showViewers(scope, event) {
  const count = Number(event.viewers);
  if (!Number.isInteger(count) || count < 0) return;
  for (const element of scope.querySelectorAll("[data-testid='viewer-count']")) {
    element.dataset.viewers = String(count);
    element.textContent = `${count} watching`;
  }
}
