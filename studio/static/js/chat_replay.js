// A replay's chat: the broadcast's messages (fetched page by page from the
// API) appear as the video reaches the moment each was sent (`offset`
// seconds from the broadcast's start). Seeking back removes what was not yet
// said at that point; seeking forward adds what was.
import { messageItem } from "./chat.js";
import { formatElapsed } from "./live.js";

const PAGE_SIZE = 200; // the API's largest page
const MAX_PAGES = 500; // a bound on a runaway pager, far above any real broadcast

// Index of the first message whose offset is after `time` (messages sorted by offset).
export function sentBy(messages, time) {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (messages[middle].offset <= time) low = middle + 1;
    else high = middle;
  }
  return low;
}

// Every message of the broadcast, oldest first, reading forward page by
// page (`after` the last id seen, from 0) while the API says there is more.
export async function fetchBroadcastChat(url) {
  const messages = [];
  let after = 0;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const pageUrl = new URL(url, window.location.href);
    pageUrl.searchParams.set("limit", String(PAGE_SIZE));
    pageUrl.searchParams.set("after", String(after));
    const reply = await fetch(pageUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const body = await reply.json();
    const found = Array.isArray(body.messages) ? body.messages : [];
    messages.push(...found);
    if (!body.has_more || !found.length) break;
    after = found[found.length - 1].id;
  }
  return messages;
}

// A message as the replay shows it: when in the broadcast it was sent.
function replayItem(message) {
  const item = messageItem(message, { showTime: false });
  const at = document.createElement("span");
  at.className = "chat-offset";
  at.textContent = formatElapsed(message.offset * 1000);
  item.prepend(at, " ");
  return item;
}

export function mountReplayChat(panel, video) {
  const list = panel.querySelector("[data-testid='chat-messages']");
  const state = panel.querySelector("[data-testid='chat-state']");
  let messages = [];
  let shown = 0;

  function follow() {
    const target = sentBy(messages, video.currentTime);
    if (target === shown) return;
    if (target > shown) {
      list.append(...messages.slice(shown, target).map(replayItem));
    } else {
      while (list.children.length > target) list.lastElementChild.remove();
    }
    shown = target;
    list.scrollTop = list.scrollHeight;
  }

  async function load() {
    try {
      const all = await fetchBroadcastChat(panel.dataset.url);
      messages = all.filter((m) => typeof m.offset === "number").sort((a, b) => a.offset - b.offset || a.id - b.id);
    } catch {
      state.textContent = "The chat of this broadcast could not be loaded.";
      state.hidden = false;
      return;
    }
    state.textContent = messages.length ? "" : "No chat messages in this broadcast.";
    state.hidden = messages.length > 0;
    panel.dataset.ready = "true";
    follow();
  }

  for (const name of ["timeupdate", "seeked", "seeking", "loadedmetadata"]) {
    video.addEventListener(name, follow);
  }
  load();
}
