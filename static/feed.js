// The feed page of a stream session: the image is the feed's newest frame (or, with the live
// view, the newest one the model saw, its boxes drawn by the worker), asked for again as soon
// as the last one has loaded, at most 10 times a second; Capture (the button, Space or C) asks
// the feed for the frame of this moment and says what became of it; the status panel (htmx,
// every second) is asked for at once after a capture. Without JS the image is a still and the
// Capture button posts the form.
(function () {
  "use strict";

  var root = document.getElementById("feed");
  if (!root) return;
  var image = document.getElementById("feed-image");
  var noFrame = document.getElementById("feed-noframe");
  var button = document.getElementById("feed-capture");
  var message = document.getElementById("feed-capture-message");
  var frameUrl = root.dataset.frameUrl;
  var captureUrl = root.dataset.captureUrl;
  var view = root.dataset.view || "camera";
  var open = root.dataset.status === "in_progress";
  var MIN_GAP_MS = 100;
  var RETRY_MS = 1000;
  var sending = 0;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (error) {
      return "";
    }
  }

  function ended() {
    var status = document.getElementById("feed-status");
    return !open || (status && status.dataset.state === "ended");
  }

  // --- the image ---
  var timer = null;
  function next(delay) {
    clearTimeout(timer);
    if (ended()) return;
    timer = setTimeout(function () {
      image.src = frameUrl + "?view=" + encodeURIComponent(view) + "&t=" + Date.now();
    }, delay);
  }
  var frame = image.parentElement;
  image.addEventListener("load", function () {
    noFrame.hidden = true;
    image.hidden = false;
    if (image.naturalWidth && image.naturalHeight) {
      frame.style.aspectRatio = image.naturalWidth + " / " + image.naturalHeight; // no letterbox
    }
    next(MIN_GAP_MS);
  });
  image.addEventListener("error", function () {
    noFrame.hidden = false;
    image.hidden = true;
    next(RETRY_MS);
  });
  if (image.complete && image.naturalWidth === 0) {
    noFrame.hidden = false;
    image.hidden = true;
    next(RETRY_MS);
  }
  document.querySelectorAll('input[name="feed-view"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (radio.checked) {
        view = radio.value;
        next(0);
      }
    });
  });
  if (!open) return;

  // --- capture ---
  function say(text, kind) {
    message.textContent = text;
    message.className = "feed-capture-message" + (kind ? " " + kind : "");
  }

  function refreshStatus() {
    var status = document.getElementById("feed-status");
    if (status && window.htmx) window.htmx.trigger(status, "feed-refresh");
  }

  function capture() {
    if (!button || button.disabled || ended()) return;
    sending += 1;
    root.classList.remove("feed-flash");
    void root.offsetWidth; // restart the flash
    root.classList.add("feed-flash");
    say("Capturing…");
    fetch(captureUrl, {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.detail || "The capture was refused (" + response.status + ").");
          return body;
        });
      })
      .then(function (body) {
        say(body.message || body.outcome, body.outcome === "kept" ? "ok" : body.outcome === "no_frame" ? "bad" : "");
      })
      .catch(function (error) {
        say(error.message, "bad");
      })
      .finally(function () {
        sending -= 1;
        refreshStatus();
      });
  }

  if (button) {
    button.form.addEventListener("submit", function (event) {
      event.preventDefault();
      capture();
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) return;
    if (event.key === " " || event.key === "c" || event.key === "C") {
      if (event.key === " " && (tag === "BUTTON" || tag === "A")) return; // Space presses the focused control
      event.preventDefault();
      capture();
    }
  });
})();
