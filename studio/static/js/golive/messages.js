// What the creator reads when something goes wrong: one sentence that says
// what happened and what to do about it.

export const MESSAGES = {
  insecure:
    "The camera only works on a secure page. Open the studio over HTTPS (https://…); " +
    "on your own machine, http://localhost works too.",
  permission:
    "The browser is not allowed to use the camera or microphone. Allow them in the site " +
    "settings (the icon left of the address bar), then reload the page.",
  noDevice: "No camera or microphone was found. Plug one in, or pick another one in the lists.",
  deviceBusy: "The camera or microphone is in use by another application. Close it and try again.",
  screenCancelled: "Screen sharing was cancelled.",
  unsupported: "This browser cannot capture a camera or screen. Use a recent Chrome, Edge, Firefox or Safari.",
  noRecorder:
    "This browser cannot record H.264 video, which sending over the WebSocket needs. " +
    "Use a recent Chrome or Edge.",
  unreachable: "The media server cannot be reached. Check your connection and try again in a moment.",
  studioUnreachable:
    "Could not connect to the studio. Check your connection, and that you are still logged in " +
    "(reload the page).",
  uploadTooSlow:
    "Your upload is too slow for this quality: the video was piling up in the browser. " +
    "Choose a lower bitrate or resolution, then go live again.",
  keyRefused:
    "The media server refused this stream's key: it was rotated, or the stream is disabled. " +
    "Reload the page (and enable the stream if needed).",
  sessionExpired: "You have been logged out. Log in again, then come back to this page.",
  lost: (attempt, max, seconds) =>
    `The connection was lost. Reconnecting in ${seconds} s (attempt ${attempt} of ${max})…`,
  gaveUp: "The connection could not be restored. Check your network, then press Go live again.",
};

// getUserMedia/getDisplayMedia failures by DOMException name.
export function captureErrorMessage(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return MESSAGES.permission;
    case "NotFoundError":
    case "OverconstrainedError":
      return MESSAGES.noDevice;
    case "NotReadableError":
    case "AbortError":
      return MESSAGES.deviceBusy;
    case "TypeError":
      return MESSAGES.unsupported;
    default:
      return `The camera could not be started (${error?.message || error}).`;
  }
}

// An error a publisher raises: `kind` says which message applies and
// whether trying again can help.
export class PublishError extends Error {
  constructor(kind, message, { retry = false } = {}) {
    super(message);
    this.kind = kind;
    this.retry = retry;
  }
}
