// Times in the viewer's own time zone: the server renders
// <time datetime="ISO 8601" data-local>UTC text</time>; here they are
// formatted with the browser's locale and zone, including those that arrive
// later in re-fetched lists. data-local="ago" reads "5 minutes ago" instead,
// kept current while the page is open.
const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 365 * 86_400],
  ["month", 30 * 86_400],
  ["week", 7 * 86_400],
  ["day", 86_400],
  ["hour", 3_600],
  ["minute", 60],
];

function ago(moment) {
  const seconds = (moment.getTime() - Date.now()) / 1000;
  // A clock a little ahead of the server's reads as "just now", not "in 1 minute".
  for (const [unit, size] of UNITS) {
    if (-seconds >= size) return relative.format(Math.trunc(seconds / size), unit);
  }
  return "just now";
}

function localize(root, selector = "time[data-local]") {
  for (const element of root.querySelectorAll(selector)) {
    const moment = new Date(element.dateTime);
    if (Number.isNaN(moment.getTime())) continue;
    const relativeTime = element.dataset.local === "ago";
    const text = relativeTime ? ago(moment) : format.format(moment);
    if (element.textContent !== text) element.textContent = text;
    element.title = relativeTime ? format.format(moment) : moment.toISOString();
    if (!relativeTime) element.removeAttribute("data-local");
  }
}

localize(document);
new MutationObserver(() => localize(document)).observe(document.body, {
  childList: true,
  subtree: true,
});
setInterval(() => localize(document, 'time[data-local="ago"]'), 30_000);
