// ydc's small page script.
// - Say so when an htmx request fails: htmx 2 swaps only 2xx and 422 answers, and a generic
//   error answered with "HX-Reswap: none" is not swapped either, so without this a failed click
//   would look like nothing happened.
// - Back off a polling element (a task panel) while the server does not answer, instead of
//   asking every second and showing the same message forever.
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

  function polls(element) {
    return /\bevery\b/.test(element.getAttribute("hx-trigger") || "");
  }

  // Returns true when the failure should be shown (the first of a run for a poller).
  function failed(element) {
    if (!element || !polls(element)) return true;
    var failures = Number(element.dataset.failures || 0) + 1;
    element.dataset.failures = String(failures);
    element.dataset.retryAt = String(Date.now() + Math.min(30000, 1000 * Math.pow(2, failures)));
    return failures === 1;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail.elt;
    if (polls(element) && Number(element.dataset.retryAt || 0) > Date.now()) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var element = event.detail.elt;
    if (!xhr || xhr.status === 0) return; // htmx:sendError handles these
    if (xhr.status < 400) {
      if (element && element.dataset) delete element.dataset.failures;
      return;
    }
    var swapped = xhr.status === 422 && xhr.getResponseHeader("HX-Reswap") !== "none";
    if (!swapped && failed(element)) show(messageOf(xhr));
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (failed(event.detail.elt)) show("The server could not be reached. Is ydc still running?");
  });
})();
