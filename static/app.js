// ydc's small page script: say so when an htmx request fails (htmx 2 does not swap 4xx/5xx
// responses other than 422, so without this a failed click would look like nothing happened).
(function () {
  "use strict";

  function messageOf(xhr) {
    var text = xhr.responseText || "";
    try {
      var data = JSON.parse(text);
      if (data && typeof data.detail === "string") return data.detail;
    } catch (ignored) { /* not JSON: an HTML fragment */ }
    var doc = new DOMParser().parseFromString(text, "text/html");
    var alert = doc.querySelector("[role=alert]") || doc.body;
    var said = (alert && alert.textContent || "").trim();
    return said || "The server answered " + xhr.status + ".";
  }

  function show(message) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(show.timer);
    show.timer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  document.addEventListener("htmx:responseError", function (event) {
    show(messageOf(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    show("The server could not be reached. Is ydc still running?");
  });
})();
