// Task-end notices on every page, without a reload.
// Polls GET /api/v1/notifications (one indexed query) every few seconds: the first answer gives
// the cursor (so nothing that ended before the page opened is shown), later ones the tasks that
// ended after it. A hidden tab skips its turns (the next visible one catches up); a failing
// server is asked less and less often; a 401 (logged out) stops it. Each notice links to its
// task; failures and cancels stay until closed, successes go after a while.
(function () {
  "use strict";

  var box = document.getElementById("notices");
  if (!box || !window.fetch) return;
  var source = box.getAttribute("data-source") || "/api/v1/notifications";
  var every = Number(box.getAttribute("data-every-ms")) || 5000;
  var keepMs = 15000;
  var most = 4;
  var cursor = null;
  var failures = 0;

  function later(ms) { setTimeout(poll, ms); }

  function notice(task) {
    var item = document.createElement("div");
    item.className = "task-notice task-notice-" + task.status;
    item.setAttribute("data-task", String(task.id));
    var text = document.createElement("a");
    text.href = task.url;
    var what = task.title + " #" + task.id + (task.project ? " of " + task.project : "");
    text.textContent = what + " " + task.status;
    item.appendChild(text);
    if (task.status === "failed" && task.error) {
      var why = document.createElement("span");
      why.className = "notice-error";
      why.textContent = task.error;
      item.appendChild(why);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "notice-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(close);
    return item;
  }

  function show(task) {
    var item = notice(task);
    box.appendChild(item);
    while (box.children.length > most) box.firstElementChild.remove();
    if (task.status === "succeeded") setTimeout(function () { item.remove(); }, keepMs);
    document.body.dispatchEvent(new CustomEvent("ydc:task-ended", { detail: task }));
  }

  function poll() {
    if (document.hidden && cursor !== null) { later(every); return; }
    var url = source + (cursor === null ? "" : "?after=" + encodeURIComponent(cursor));
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) throw new Error("stop");
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        if (cursor !== null) (data.tasks || []).forEach(show);
        cursor = data.cursor;
        later(every);
      })
      .catch(function (error) {
        if (error && error.message === "stop") return;
        failures += 1;
        later(Math.min(60000, every * Math.pow(2, failures)));
      });
  }

  poll();
})();
