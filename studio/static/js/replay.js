// A replay's page: plays the broadcast's VOD playlist from its start. While
// the replay is still being written, the stream's websocket says when it is
// ready, and the page reloads with it. The broadcast's chat is shown in step
// with the video (chat_replay.js).
import { mountReplayChat } from "./chat_replay.js";
import { watchStream } from "./live.js";
import { REPLAY_CONFIG, createPlayer } from "./player.js";

const player = document.querySelector("[data-player]");
const find = (testid) => document.querySelector(`[data-testid='${testid}']`);
const controls = createPlayer({
  player,
  video: find("video"),
  message: find("player-message"),
  unmute: find("unmute"),
});

const chatPanel = document.querySelector("[data-replay-chat]");
if (chatPanel) mountReplayChat(chatPanel, find("video"));

if (player.dataset.replayUrl) {
  controls.play(player.dataset.replayUrl, "replay", REPLAY_CONFIG);
} else {
  const socket = watchStream(player.dataset.stream, {
    onEvent: (event) => {
      if (event.type === "replay" && String(event.broadcast?.id) === player.dataset.broadcast) {
        socket.close();
        window.location.reload();
      }
    },
    onConnection: (open, { refused } = {}) => {
      player.dataset.connected = refused ? "refused" : String(open);
    },
  });
}
