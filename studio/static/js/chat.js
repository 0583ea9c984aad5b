// Live chat beside the player (watch page) and on the creator's pages
// (stream page, go-live page), over the stream's websocket (live.js).
// Text only: every message, name and link is written with textContent, never
// as HTML. Moderators (the server says `you.moderator`) also get delete,
// time-out and ban actions on each message and the chat's settings.
//
// mountChat(panel, { send }) returns { onEvent, onConnection } for the page's
// watchStream(); `send(object)` sends a JSON frame and says whether it could.

import { moderationActions, mountModeration } from "./chat_moderation.js";

export const MAX_CHARACTERS = 500;
const MAX_SHOWN = 200; // older messages leave the page (history holds 50)
const NAME_KEY = "studio.chat.name";
const ANON_KEY = "studio.chat.anon";
const ANON_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;
const MAX_NAME = 40;
const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

// Characters as a person counts them (an emoji is one, not two UTF-16 units).
export function characterCount(text) {
  return [...text].length;
}

// "4 min 30 s", "12 s", "1 h 5 min".
export function formatWait(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (hours) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  if (minutes) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  return `${rest} s`;
}

// What a writer is told for a chat.error, in words; `left` is the seconds
// still to wait (counting down on the page), or null.
export function errorText(error, left) {
  const wait = left == null ? null : formatWait(left);
  switch (error.code) {
    case "banned":
      return "You are banned from this chat and cannot write here.";
    case "timed_out":
      return wait ? `You are timed out: you can write again in ${wait}.` : "You are timed out for now.";
    case "slow_mode":
      return wait ? `Slow mode is on: you can send your next message in ${wait}.` : "Slow mode is on: wait a moment.";
    case "chat_off":
      return "Chat is off.";
    case "signed_in_only":
      return "Only signed-in viewers can write in this chat.";
    case "too_long":
      return `A message can have at most ${MAX_CHARACTERS} characters.`;
    case "rate_limited":
      return wait ? `You are sending too fast: try again in ${wait}.` : "You are sending too fast: wait a moment.";
    default:
      return error.message || "The message could not be sent.";
  }
}

// The pieces of `text` as nodes: plain text, and http(s) links that open
// safely (no referrer opener, no ranking credit). Anything else that looks
// like a link stays text.
export function messageNodes(text) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    const raw = match[0].replace(TRAILING, "");
    let url = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
    if (match.index > at) nodes.push(document.createTextNode(text.slice(at, match.index)));
    const link = document.createElement("a");
    link.href = url.href;
    link.rel = "nofollow noopener ugc";
    link.target = "_blank";
    link.textContent = raw;
    nodes.push(link);
    at = match.index + raw.length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

// One message as a list item (moderators get its actions).
export function messageItem(message, { moderator = false, showTime = true } = {}) {
  const item = document.createElement("li");
  item.className = "chat-message";
  item.dataset.testid = "chat-message";
  item.dataset.id = String(message.id);
  item.dataset.participant = message.participant;
  const name = document.createElement("span");
  name.className = message.signed_in ? "chat-name" : "chat-name chat-guest";
  name.dataset.testid = "chat-name";
  name.textContent = message.name;
  if (!message.signed_in) name.title = "Not signed in";
  const text = document.createElement("span");
  text.className = "chat-text";
  text.dataset.testid = "chat-text";
  text.append(...messageNodes(message.text));
  item.append(name, " ", text);
  const sent = Date.parse(message.sent_at);
  if (showTime && !Number.isNaN(sent)) {
    const time = document.createElement("time");
    time.dateTime = message.sent_at;
    time.textContent = new Date(sent).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
    item.append(" ", time);
  }
  if (moderator) item.append(moderationActions(message));
  return item;
}

// localStorage, or nothing where the browser refuses it (storage off, some
// private modes): the chat then asks again on the next visit.
function stored(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // Kept for this page only.
  }
}

// The browser's anonymous identity for this site (random, kept).
let pageAnonymousId = null;
function anonymousId() {
  let id = stored(ANON_KEY) || pageAnonymousId;
  if (!id || !ANON_PATTERN.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    store(ANON_KEY, id);
  }
  pageAnonymousId = id;
  return id;
}

export function mountChat(panel, { send }) {
  const find = (testid) => panel.querySelector(`[data-testid='${testid}']`);
  const ui = {
    state: find("chat-state"),
    list: find("chat-messages"),
    announcer: find("chat-announcer"),
    form: find("chat-form"),
    nameField: find("chat-name-field"),
    name: find("chat-display-name"),
    author: find("chat-author"),
    changeName: find("chat-change-name"),
    input: find("chat-input"),
    count: find("chat-count"),
    sendButton: find("chat-send"),
    error: find("chat-error"),
    signIn: find("chat-sign-in"),
    jump: find("chat-jump"),
  };
  let you = { moderator: false, signed_in: false, name: null };
  let settings = { mode: "everyone", slow_mode: 0 };
  let connected = false;
  let unavailable = false; // deleted, or no longer this viewer's to watch
  // Open while live and through the reconnect window (the same broadcast).
  const open = (status) => status === "live" || status === "reconnecting";
  let live = panel.dataset.status ? open(panel.dataset.status) : true; // the stream's status events say
  let broadcast = null; // the broadcast on now, whose conversation the list shows

  let waitUntil = 0; // Date.now() before which sending is held (slow mode, time-out)
  let waitError = null;
  let waitTimer = null;
  let pendingText = null;
  let editingName = false;
  let pageName = null; // the name chosen here, where storage is refused
  const moderation = mountModeration(panel, { send, list: ui.list });

  function storedName() {
    const name = (stored(NAME_KEY) || pageName || "").trim();
    return name && characterCount(name) <= MAX_NAME ? name : "";
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = !text;
  }

  function canWrite() {
    if (!live || settings.mode === "off") return false;
    if (settings.mode === "signed_in" && !you.signed_in) return false;
    return true;
  }

  function render() {
    const off = settings.mode === "off";
    const signInNeeded = settings.mode === "signed_in" && !you.signed_in;
    if (unavailable) ui.state.textContent = "This stream is not available.";
    else if (!connected) ui.state.textContent = "Connecting to the chat…";
    else if (off) ui.state.textContent = "Chat is off.";
    else if (!live) ui.state.textContent = "The chat opens when the stream goes live.";
    else ui.state.textContent = "";
    ui.state.hidden = !ui.state.textContent;
    panel.toggleAttribute("data-open", connected && canWrite()); // an empty list invites a first message
    ui.form.hidden = !connected || !canWrite();
    ui.signIn.hidden = !connected || !live || !signInNeeded;
    const anonymous = !you.signed_in;
    const name = anonymous ? storedName() : you.name || "";
    ui.nameField.hidden = !anonymous || (Boolean(name) && !editingName);
    ui.author.hidden = !name;
    ui.author.querySelector("[data-name]").textContent = name;
    ui.changeName.hidden = !anonymous;
    moderation?.setModerator(you.moderator);
    updateCount();
  }

  function updateCount() {
    const count = characterCount(ui.input.value);
    const over = count - MAX_CHARACTERS;
    ui.count.textContent =
      over > 0 ? `${over} character${over === 1 ? "" : "s"} too many` : `${count}/${MAX_CHARACTERS}`;
    ui.count.classList.toggle("error", over > 0);
    ui.input.setAttribute("aria-invalid", String(over > 0));
    const waiting = Date.now() < waitUntil;
    ui.sendButton.disabled = over > 0 || waiting || !connected;
  }

  // Hold sending for `seconds`: the writer is told why and for how long once
  // (an alert that changed every second would be read out every second);
  // the Send button counts down.
  function holdFor(seconds, error) {
    waitUntil = Date.now() + seconds * 1000;
    waitError = error;
    showError(errorText(error, seconds));
    window.clearInterval(waitTimer);
    const tick = () => {
      const left = (waitUntil - Date.now()) / 1000;
      if (left <= 0) {
        window.clearInterval(waitTimer);
        waitTimer = null;
        waitError = null;
        showError("");
      }
      ui.sendButton.textContent = left > 0 ? `Send (${formatWait(left)})` : "Send";
      updateCount();
    };
    tick();
    waitTimer = window.setInterval(tick, 1000);
  }

  function releaseHold() {
    window.clearInterval(waitTimer);
    waitTimer = null;
    waitUntil = 0;
    waitError = null;
    ui.sendButton.textContent = "Send";
    updateCount();
  }

  function isNearBottom() {
    const list = ui.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  function toLatest() {
    ui.list.scrollTop = ui.list.scrollHeight;
    ui.jump.hidden = true;
  }

  // The list follows new messages while it is at its end; scrolled back to
  // read, it stays put and offers a way to the latest instead.
  function addMessages(messages, { announce, own = false }) {
    const follow = own || isNearBottom();
    let added = false;
    for (const message of messages) {
      if (ui.list.querySelector(`[data-id='${CSS.escape(String(message.id))}']`)) continue;
      ui.list.append(messageItem(message, { moderator: you.moderator }));
      added = true;
      if (announce) ui.announcer.textContent = `${message.name}: ${message.text}`;
    }
    while (ui.list.children.length > MAX_SHOWN) ui.list.firstElementChild.remove();
    if (follow) toLatest();
    else if (added) ui.jump.hidden = false;
  }

  function applySettings(next) {
    settings = { ...settings, ...next };
    render();
    moderation?.showSettings(next);
  }

  function onEvent(event) {
    if (event.type === "status") {
      live = open(event.status);
      const on = live ? (event.broadcast?.id ?? null) : null;
      // A new broadcast starts a new conversation (the history that follows
      // a connection is already that broadcast's).
      if (on !== null && on !== broadcast) ui.list.replaceChildren();
      if (on !== null) broadcast = on;
      render();
    } else if (event.type === "unavailable") {
      unavailable = true;
      ui.list.replaceChildren(); // what was said there is not this viewer's any more
      render();
    } else if (event.type === "chat.history") {
      you = { moderator: false, signed_in: false, name: null, ...event.you };
      ui.list.replaceChildren();
      addMessages(event.messages || [], { announce: false });
      toLatest();
      applySettings(event.settings || {});
      panel.dataset.ready = "true";
    } else if (event.type === "chat.message" && event.message) {
      const own = event.message.text === pendingText; // one's own message is shown
      addMessages([event.message], { announce: true, own });
      if (own) pendingText = null; // it went through
    } else if (event.type === "chat.deleted") {
      ui.list.querySelector(`[data-id='${CSS.escape(String(event.id))}']`)?.remove();
    } else if (event.type === "chat.settings" && event.settings) {
      applySettings(event.settings);
    } else if (event.type === "chat.moderation") {
      moderation?.onEvent(event);
    } else if (event.type === "chat.error") {
      if (!moderation?.onError(event)) onError(event);
    }
  }

  function onError(error) {
    // The text that failed comes back to the box, unless a new one is being typed.
    if (pendingText !== null && !ui.input.value) {
      ui.input.value = pendingText;
      updateCount();
    }
    pendingText = null;
    if (error.code === "chat_off") {
      // Off, or the stream is not live (any more): the server's sentence says which.
      releaseHold();
      showError(error.message || errorText(error, null));
      return;
    }
    if (error.code === "signed_in_only") applySettings({ mode: "signed_in" });
    const retry = Number(error.retry_after);
    if (Number.isFinite(retry) && retry > 0) {
      holdFor(retry, error);
    } else {
      releaseHold(); // the page's own slow-mode wait is moot: nothing was sent
      showError(errorText(error, null));
    }
  }

  function onConnection(open) {
    connected = open;
    if (!open) pendingText = null;
    render();
  }

  function submit(event) {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) {
      showError("Write a message first.");
      ui.input.focus();
      return;
    }
    if (characterCount(text) > MAX_CHARACTERS) {
      showError(errorText({ code: "too_long" }, null));
      return;
    }
    if (Date.now() < waitUntil) {
      showError(errorText(waitError || { code: "slow_mode" }, (waitUntil - Date.now()) / 1000));
      return;
    }
    const frame = { type: "chat.send", text };
    if (!you.signed_in) {
      const name = ui.nameField.hidden ? storedName() : ui.name.value.trim();
      if (!name) {
        showError("Choose a display name first.");
        editingName = true;
        ui.nameField.hidden = false;
        ui.name.focus();
        return;
      }
      if (characterCount(name) > MAX_NAME) {
        showError(`A display name can have at most ${MAX_NAME} characters.`);
        ui.name.focus();
        return;
      }
      store(NAME_KEY, name);
      pageName = name;
      editingName = false;
      frame.name = name;
      frame.anon = anonymousId();
    }
    if (!send(frame)) {
      showError("Not connected to the chat: the message was not sent.");
      return;
    }
    pendingText = text;
    ui.input.value = "";
    showError("");
    if (settings.slow_mode > 0 && !you.moderator) holdFor(settings.slow_mode, { code: "slow_mode" });
    render();
    ui.input.focus();
  }

  ui.form.addEventListener("submit", submit);
  ui.jump.addEventListener("click", toLatest);
  ui.list.addEventListener("scroll", () => {
    if (isNearBottom()) ui.jump.hidden = true;
  });
  ui.input.addEventListener("input", updateCount);
  ui.input.addEventListener("keydown", (key) => {
    // Enter sends; Shift+Enter is a new line.
    if (key.key === "Enter" && !key.shiftKey && !key.isComposing) {
      key.preventDefault();
      ui.form.requestSubmit();
    }
  });
  ui.changeName.addEventListener("click", () => {
    editingName = true;
    ui.nameField.hidden = false;
    ui.name.value = storedName();
    ui.name.focus();
  });
  render();
  return { onEvent, onConnection };
}
