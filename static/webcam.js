// The webcam capture page: a getUserMedia preview (a choice of camera when there are several),
// Capture (the button, Space or C), an interval mode, and the session's counters and last
// frames. A frame is the preview drawn to a canvas, posted as a JPEG to the session's frames
// endpoint; the answer carries the session's counts and, when kept, the frame's thumbnail.
// An interval tick while a frame is on its way is left out; a manual capture always goes (the
// server takes a session's frames one at a time, in the order they come).
(function () {
  "use strict";

  var root = document.getElementById("webcam");
  if (!root || root.dataset.status !== "in_progress") return;

  var video = document.getElementById("webcam-video");
  var canvas = document.getElementById("webcam-canvas");
  var message = document.getElementById("webcam-message");
  var problem = document.getElementById("webcam-problem");
  var problemText = document.getElementById("webcam-problem-text");
  var retry = document.getElementById("webcam-retry");
  var deviceField = document.getElementById("webcam-device-field");
  var deviceSelect = document.getElementById("webcam-device");
  var captureButton = document.getElementById("webcam-capture");
  var intervalButton = document.getElementById("webcam-interval");
  var secondsInput = document.getElementById("webcam-seconds");
  var strip = document.getElementById("webcam-strip");
  var stripEmpty = document.getElementById("webcam-strip-empty");
  var framesUrl = root.dataset.framesUrl;
  var project = root.dataset.project;
  var stripSize = parseInt(root.dataset.strip, 10) || 12;
  var DEVICE_KEY = "ydc.webcam.device";

  var stream = null;
  var sending = 0; // frames on their way
  // The counters show the newest answer, whatever order the answers come in.
  var shownSeen = parseInt(document.getElementById("webcam-count-frames_seen").textContent, 10) || 0;
  var ended = false;
  var timer = null;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (error) {
      return "";
    }
  }

  function say(text, kind) {
    message.textContent = text;
    message.className = "webcam-message" + (kind ? " webcam-message-" + kind : "");
  }

  function ready(on) {
    captureButton.disabled = !on || ended;
    intervalButton.disabled = !on || ended;
  }

  function showProblem(text) {
    problemText.textContent = text;
    problem.hidden = false;
    say("The camera is not available.", "bad");
    ready(false);
    stopInterval(true);
  }

  // What went wrong with the camera, in words a person can act on.
  function cameraProblem(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "The camera was refused. Allow the camera for this site (the camera icon in the " +
        "address bar or the site settings), then try again.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
      return "No camera was found. Connect a camera, then try again.";
    }
    if (name === "NotReadableError" || name === "TrackStartError") {
      return "The camera is in use by another program or could not be started. Close the " +
        "other program, then try again.";
    }
    return "The camera could not be started (" + (name || "unknown error") + "): " +
      ((error && error.message) || "no reason given") + ".";
  }

  // The preview takes the camera's shape (a phone's camera may be portrait).
  video.addEventListener("loadedmetadata", function () {
    if (video.videoWidth && video.videoHeight) {
      video.parentNode.style.aspectRatio = video.videoWidth + " / " + video.videoHeight;
    }
  });

  function stopStream() {
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
  }

  function start(deviceId) {
    problem.hidden = true;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showProblem("Browsers allow the webcam only on localhost or over HTTPS, and this page " +
        "was opened at " + location.origin + ". Open ydc at http://localhost (or " +
        "http://127.0.0.1) on this machine, or serve it over HTTPS.");
      return;
    }
    say("Starting the camera…");
    ready(false);
    stopStream();
    var constraints = {
      audio: false,
      video: deviceId
        ? { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } }
        : { width: { ideal: 1280 }, height: { ideal: 720 } },
    };
    navigator.mediaDevices.getUserMedia(constraints).then(function (media) {
      stream = media;
      video.srcObject = media;
      return video.play().catch(function () { /* autoplay is muted: play() may still race */ });
    }).then(function () {
      var track = stream && stream.getVideoTracks()[0];
      var settings = track && track.getSettings ? track.getSettings() : {};
      if (settings.deviceId) {
        try { localStorage.setItem(DEVICE_KEY, settings.deviceId); } catch (error) { /* private mode */ }
      }
      say("Camera on" + (track && track.label ? ": " + track.label : "") +
        ". Press Space or C to capture a frame.", "ok");
      ready(true);
      // The camera works even when the list of cameras cannot be read.
      listCameras(settings.deviceId).catch(function () { deviceField.hidden = true; });
    }).catch(function (error) {
      if (deviceId && error && error.name === "OverconstrainedError") {
        // The remembered camera is gone: take any.
        try { localStorage.removeItem(DEVICE_KEY); } catch (ignored) { /* private mode */ }
        start(null);
        return;
      }
      showProblem(cameraProblem(error));
    });
  }

  // A choice of camera once access is granted (labels are empty before).
  function listCameras(current) {
    if (!navigator.mediaDevices.enumerateDevices) return Promise.resolve();
    return navigator.mediaDevices.enumerateDevices().then(function (devices) {
      var cameras = devices.filter(function (d) { return d.kind === "videoinput"; });
      deviceSelect.textContent = "";
      cameras.forEach(function (camera, index) {
        var option = document.createElement("option");
        option.value = camera.deviceId;
        option.textContent = camera.label || "Camera " + (index + 1);
        option.selected = camera.deviceId === current;
        deviceSelect.appendChild(option);
      });
      deviceField.hidden = cameras.length < 2;
    });
  }

  function setCount(key, value) {
    var cell = document.getElementById("webcam-count-" + key);
    if (cell) cell.textContent = String(value || 0);
  }

  function showCounts(counts) {
    if ((counts.frames_seen || 0) < shownSeen) return;
    shownSeen = counts.frames_seen || 0;
    ["frames_seen", "kept", "skipped_near_duplicate", "skipped_duplicate"].forEach(function (key) {
      setCount(key, counts[key]);
    });
  }

  function addThumbnail(frame) {
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/projects/" + encodeURIComponent(project) + "/images/" + encodeURIComponent(frame.filename);
    link.title = frame.filename;
    var img = document.createElement("img");
    img.src = frame.thumbnail;
    img.alt = frame.filename;
    img.width = 128;
    link.appendChild(img);
    item.appendChild(link);
    strip.insertBefore(item, strip.firstChild);
    while (strip.children.length > stripSize) strip.removeChild(strip.lastChild);
    stripEmpty.hidden = true;
  }

  function flash() {
    root.classList.remove("webcam-flash");
    void root.offsetWidth; // restart the animation
    root.classList.add("webcam-flash");
  }

  function sessionEnded(text) {
    ended = true;
    stopInterval(true);
    ready(false);
    stopStream();
    say(text + " Open the session page to see its frames.", "bad");
  }

  function capture(mode) {
    if (ended || !stream || !video.videoWidth) return;
    if (mode === "interval" && sending) return;
    sending += 1;
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    if (mode === "manual") flash();
    canvas.toBlob(function (blob) {
      if (!blob) {
        sending -= 1;
        say("The frame could not be encoded as JPEG.", "bad");
        return;
      }
      var body = new FormData();
      body.append("file", blob, "frame.jpg");
      body.append("mode", mode);
      fetch(framesUrl, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.ok) {
            showCounts(data.session.counts);
            if (data.outcome === "kept") addThumbnail(data);
            say(data.message, data.outcome === "kept" ? "ok" : "");
          } else if (response.status === 409) {
            sessionEnded(data.detail || "This session has ended.");
          } else {
            say("The frame was refused: " + (data.detail || "HTTP " + response.status), "bad");
          }
        });
      }).catch(function () {
        say("The frame could not be sent: is the ydc server still running?", "bad");
      }).then(function () {
        sending -= 1;
      });
    }, "image/jpeg", 0.92);
  }

  function seconds() {
    var value = parseFloat(secondsInput.value);
    return isFinite(value) && value >= 0.5 ? Math.min(value, 3600) : 2;
  }

  function startInterval() {
    stopInterval(true);
    intervalButton.textContent = "Stop";
    root.classList.add("webcam-running");
    say("Interval mode on: a frame every " + seconds() + " s.", "ok");
    timer = window.setInterval(function () { capture("interval"); }, seconds() * 1000);
    capture("interval");
  }

  function stopInterval(quiet) {
    var wasRunning = timer !== null;
    if (wasRunning) window.clearInterval(timer);
    timer = null;
    intervalButton.textContent = "Start";
    root.classList.remove("webcam-running");
    if (wasRunning && !quiet && !ended) say("Interval mode stopped.");
  }

  captureButton.addEventListener("click", function () { capture("manual"); });
  intervalButton.addEventListener("click", function () {
    if (timer === null) startInterval(); else stopInterval(false);
  });
  secondsInput.addEventListener("change", function () {
    if (timer !== null) startInterval();
  });
  retry.addEventListener("click", function () { start(null); });
  deviceSelect.addEventListener("change", function () { start(deviceSelect.value); });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || (target && target.isContentEditable)) return;
    var isSpace = event.key === " " || event.code === "Space";
    var isC = event.key === "c" || event.key === "C";
    // Space on a focused button or link is that control's own key.
    if (isSpace && (tag === "BUTTON" || tag === "A" || tag === "SUMMARY")) return;
    if (!isSpace && !isC) return;
    event.preventDefault();
    if (!captureButton.disabled) capture("manual");
  });

  window.addEventListener("pagehide", function () {
    stopInterval(true);
    stopStream();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && !ended) start(deviceSelect.value || null);
  });

  var remembered = null;
  try { remembered = localStorage.getItem(DEVICE_KEY); } catch (error) { /* private mode */ }
  start(remembered);
})();
