// The public watch page: the stream's player (live, ended, replays; see
// player.js), its live chat (chat.js) on the same socket, and the list of
// past broadcasts.
import { mountChat } from "./chat.js";
import { mountStreamPlayer } from "./player.js";

let socket = null;
const panel = document.querySelector("[data-chat]");
const chat = panel ? mountChat(panel, { send: (frame) => socket?.send(frame) ?? false }) : {};
socket = mountStreamPlayer(document, chat);
