// The public watch page: the stream's player (live, ended, replays; see
// player.js) and the list of past broadcasts below it.
import { mountStreamPlayer } from "./player.js";

mountStreamPlayer(document);
