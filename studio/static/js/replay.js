// A replay's page: plays the broadcast's VOD playlist from its start.
import { REPLAY_CONFIG, createPlayer } from "./player.js";

const player = document.querySelector("[data-player]");
const find = (testid) => document.querySelector(`[data-testid='${testid}']`);
const controls = createPlayer({
  player,
  video: find("video"),
  message: find("player-message"),
  unmute: find("unmute"),
});
if (player.dataset.replayUrl) controls.play(player.dataset.replayUrl, "replay", REPLAY_CONFIG);
