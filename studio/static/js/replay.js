// A replay's page: plays the broadcast's VOD playlist from its start. While
// the replay is still being written, the stream's websocket says when it is
// ready, and the page reloads with it.
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
