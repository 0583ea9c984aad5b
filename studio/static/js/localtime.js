// Times in the viewer's own time zone: the server renders
// <time datetime="ISO 8601" data-local>UTC text</time>; here they are
// formatted with the browser's locale and zone, including those that arrive
// later in re-fetched lists.
const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function localize(root) {
  for (const element of root.querySelectorAll("time[data-local]")) {
    const moment = new Date(element.dateTime);
    if (Number.isNaN(moment.getTime())) continue;
    element.textContent = format.format(moment);
    element.title = moment.toISOString();
    element.removeAttribute("data-local");
  }
}

localize(document);
new MutationObserver(() => localize(document)).observe(document.body, {
  childList: true,
  subtree: true,
});
