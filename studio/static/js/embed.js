// The embeddable player (/embed/<id>, framed by other sites): the same
// stream player as the watch page, nothing around it.
import { mountStreamPlayer } from "./player.js";

mountStreamPlayer(document);
