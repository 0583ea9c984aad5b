// The moderators' side of the chat (chat.js): delete / time out / ban on each
// message, the chat's settings (who can write, slow mode, blocked words), and
// the participants banned or timed out, with an undo. The server decides who
// moderates (`you.moderator`) and checks every action again.

export const MAX_SLOW_MODE = 3600;
export const MAX_TIMEOUT_MINUTES = 10080;

function actionButton(label, action, spoken) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.dataset.action = action;
  button.textContent = label;
  button.setAttribute("aria-label", spoken);
  return button;
}

// The actions shown on a message for moderators.
export function moderationActions(message) {
  const actions = document.createElement("span");
  actions.className = "chat-actions";
  actions.append(
    actionButton("Delete", "delete", `Delete message from ${message.name}`),
    actionButton("Time out", "timeout", `Time out ${message.name}`),
    actionButton("Ban", "ban", `Ban ${message.name}`),
  );
  return actions;
}

// The words of the blocklist box: one per line (commas also separate).
export function blocklistWords(value) {
  return value
    .split(/[\n,]/)
    .map((word) => word.trim())
    .filter(Boolean);
}

export function mountModeration(panel, { send, list }) {
  const find = (testid) => panel.querySelector(`[data-testid='${testid}']`);
  const box = find("chat-moderation");
  if (!box) return null;
  const ui = {
    mode: find("chat-mode"),
    slowMode: find("chat-slow-mode"),
    blocklist: find("chat-blocklist"),
    timeoutMinutes: find("chat-timeout-minutes"),
    form: find("chat-settings-form"),
    saved: find("chat-settings-saved"),
    banned: find("chat-banned"),
    bannedBox: panel.querySelector("[data-banned-box]"),
  };
  let moderator = false;
  let saving = false;

  function participantName(participant) {
    const item = list.querySelector(`[data-participant='${CSS.escape(participant)}'] [data-testid='chat-name']`);
    return item ? item.textContent : "A participant";
  }

  function showRestricted(event) {
    let row = ui.banned.querySelector(`[data-participant='${CSS.escape(event.participant)}']`);
    if (event.action === "unban") {
      row?.remove();
    } else {
      const name = participantName(event.participant);
      const until = Date.parse(event.until);
      const what = event.action === "ban" || Number.isNaN(until)
        ? "banned"
        : `timed out until ${new Date(until).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })}`;
      row?.remove();
      row = document.createElement("li");
      row.dataset.participant = event.participant;
      row.dataset.testid = "chat-restricted";
      const unban = document.createElement("button");
      unban.type = "button";
      unban.className = "link";
      unban.dataset.unban = event.participant;
      unban.textContent = "Lift";
      unban.setAttribute("aria-label", `Lift the ${event.action === "ban" ? "ban" : "time-out"} of ${name}`);
      row.append(`${name}: ${what} `, unban);
      ui.banned.append(row);
    }
    ui.bannedBox.hidden = !ui.banned.children.length;
  }

  function onClick(click) {
    const button = click.target.closest("[data-action]");
    if (!button || !moderator) return;
    const item = button.closest("[data-testid='chat-message']");
    const participant = item.dataset.participant;
    const action = button.dataset.action;
    if (action === "delete") {
      send({ type: "chat.delete", id: Number(item.dataset.id) });
    } else if (action === "timeout") {
      const minutes = Number.parseInt(ui.timeoutMinutes.value || "10", 10);
      const valid = Number.isInteger(minutes) && minutes >= 1 && minutes <= MAX_TIMEOUT_MINUTES;
      send({ type: "chat.timeout", participant, minutes: valid ? minutes : 10 });
    } else if (action === "ban") {
      send({ type: "chat.ban", participant });
    }
  }

  function save(event) {
    event.preventDefault();
    const slow = Number(ui.slowMode.value || "0");
    if (!Number.isInteger(slow) || slow < 0 || slow > MAX_SLOW_MODE) {
      ui.saved.textContent = `Slow mode takes 0 to ${MAX_SLOW_MODE} seconds.`;
      return;
    }
    ui.saved.textContent = "";
    saving = true;
    send({ type: "chat.settings", mode: ui.mode.value, slow_mode: slow, blocklist: blocklistWords(ui.blocklist.value) });
  }

  list.addEventListener("click", onClick);
  ui.form.addEventListener("submit", save);
  ui.banned.addEventListener("click", (click) => {
    const button = click.target.closest("[data-unban]");
    if (button) send({ type: "chat.unban", participant: button.dataset.unban });
  });

  return {
    setModerator(value) {
      moderator = value;
      box.hidden = !value;
    },
    showSettings(settings) {
      if (!moderator) return;
      if (settings.mode) ui.mode.value = settings.mode;
      if (settings.slow_mode != null) ui.slowMode.value = String(settings.slow_mode);
      if (Array.isArray(settings.blocklist)) ui.blocklist.value = settings.blocklist.join("\n");
      if (saving) ui.saved.textContent = "Chat settings saved.";
      saving = false;
    },
    onEvent(event) {
      if (event.type === "chat.moderation" && moderator && event.participant) showRestricted(event);
    },
    onError(error) {
      // A refused settings change is told beside the settings form.
      if (saving && error.code === "invalid") {
        ui.saved.textContent = error.message;
        saving = false;
        return true;
      }
      return false;
    },
  };
}
