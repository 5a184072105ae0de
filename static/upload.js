// The project page's upload box (templates/projects/_upload.html).
// - Files dropped anywhere on the page (folders too) or chosen in the picker are uploaded at
//   once, a batch per request (at most BATCH_FILES files or BATCH_BYTES bytes, a bigger file
//   alone), one request after the other, so a thousand photos never make one huge request.
// - One progress bar for all of them, from the bytes sent.
// - Each batch answers one row per file (images/_upload_batch.html); the rows go into the list
//   and the counts into the totals. A batch the server refuses as a whole (too big, project
//   gone, server down) gets a refused row per file with the reason.
// - When everything is sent, "ydc:images-changed" on <body> lets the page's boxes refresh.
(function () {
  "use strict";

  var BATCH_FILES = 50;
  var BATCH_BYTES = 64 * 1024 * 1024;

  var form = document.querySelector("form[data-upload]");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var progressBox = form.querySelector("[data-upload-progress]");
  var bar = progressBox.querySelector("progress");
  var status = progressBox.querySelector("[role=status]");
  var results = document.getElementById("upload-results");
  var list = document.getElementById("upload-list");
  var submit = form.querySelector("[data-upload-submit]");
  var busy = false;
  var queue = [];

  // Choosing files starts the upload: the button is only for pages without this script.
  if (submit) submit.hidden = true;

  function token() {
    var field = form.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function batches(files) {
    var out = [];
    var current = [];
    var bytes = 0;
    files.forEach(function (file) {
      if (current.length && (current.length >= BATCH_FILES || bytes + file.size > BATCH_BYTES)) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(file);
      bytes += file.size;
    });
    if (current.length) out.push(current);
    return out;
  }

  function addTotals(counts) {
    ["stored", "duplicate", "refused"].forEach(function (outcome) {
      var cell = results.querySelector("[data-total=" + outcome + "]");
      cell.textContent = String(Number(cell.textContent) + (counts[outcome] || 0));
    });
  }

  function refusedRows(files, reason) {
    files.forEach(function (file) {
      var row = document.createElement("li");
      row.className = "result result-refused";
      [["outcome", "refused"], ["original", file.name], ["detail", reason]].forEach(function (part) {
        var span = document.createElement("span");
        span.className = part[0];
        span.textContent = part[1];
        row.appendChild(span);
      });
      list.appendChild(row);
    });
    addTotals({ refused: files.length });
  }

  function messageOf(xhr) {
    try {
      var data = JSON.parse(xhr.responseText);
      if (data && typeof data.detail === "string") return data.detail;
    } catch (ignored) { /* an HTML page */ }
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var alert = doc.querySelector("[role=alert]");
    return (alert && alert.textContent.trim()) || "The server answered " + xhr.status + ".";
  }

  function send(files, split, sentBefore, totalBytes, done) {
    var data = new FormData();
    data.append("split", split);
    files.forEach(function (file) { data.append("files", file, file.name); });
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action"));
    xhr.setRequestHeader("X-CSRF-Token", token());
    xhr.setRequestHeader("HX-Request", "true");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        var sent = sentBefore + Math.min(event.loaded, batchBytes(files));
        bar.value = Math.min(99, Math.floor((100 * sent) / totalBytes));
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 200) {
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var batch = doc.querySelector(".upload-batch");
        if (batch) {
          Array.prototype.slice.call(batch.querySelectorAll("li")).forEach(function (row) {
            list.appendChild(document.importNode(row, true));
          });
          addTotals({
            stored: Number(batch.dataset.stored),
            duplicate: Number(batch.dataset.duplicate),
            refused: Number(batch.dataset.refused),
          });
        }
      } else {
        refusedRows(files, messageOf(xhr));
      }
      done();
    });
    xhr.addEventListener("error", function () {
      refusedRows(files, "The server could not be reached. Is ydc still running?");
      done();
    });
    xhr.send(data);
  }

  function batchBytes(files) {
    return files.reduce(function (sum, file) { return sum + file.size; }, 0);
  }

  function upload(files) {
    if (!files.length) return;
    if (busy) {
      queue = queue.concat(files);
      return;
    }
    busy = true;
    var split = form.querySelector("select[name=split]").value;
    var parts = batches(files);
    var totalBytes = Math.max(1, batchBytes(files));
    var sentBytes = 0;
    var filesDone = 0;
    results.hidden = false;
    progressBox.hidden = false;
    bar.value = 0;

    function next(index) {
      if (index === parts.length) {
        bar.value = 100;
        status.textContent = "Sent " + files.length + (files.length === 1 ? " file." : " files.");
        busy = false;
        input.value = "";
        document.body.dispatchEvent(new CustomEvent("ydc:images-changed", { bubbles: true }));
        if (queue.length) {
          var waiting = queue;
          queue = [];
          upload(waiting);
        }
        return;
      }
      var part = parts[index];
      status.textContent = "Uploading " + (filesDone + 1) + "–" + (filesDone + part.length) +
        " of " + files.length + " files…";
      send(part, split, sentBytes, totalBytes, function () {
        sentBytes += batchBytes(part);
        filesDone += part.length;
        bar.value = Math.min(99, Math.floor((100 * sentBytes) / totalBytes));
        next(index + 1);
      });
    }
    next(0);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    upload(Array.prototype.slice.call(input.files || []));
  });
  input.addEventListener("change", function () {
    upload(Array.prototype.slice.call(input.files || []));
  });

  // --- drop anywhere on the page -------------------------------------------------------------

  function carriesFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  // A dropped folder's files, read through the entries API (readEntries answers in chunks).
  function filesOfEntry(entry) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        if (entry.name.charAt(0) === ".") { resolve([]); return; } // .DS_Store and the like
        entry.file(function (file) { resolve([file]); }, function () { resolve([]); });
        return;
      }
      if (!entry.isDirectory) { resolve([]); return; }
      var reader = entry.createReader();
      var found = [];
      (function readMore() {
        reader.readEntries(function (entries) {
          if (!entries.length) {
            Promise.all(found.map(filesOfEntry)).then(function (lists) {
              resolve([].concat.apply([], lists));
            });
            return;
          }
          found = found.concat(Array.prototype.slice.call(entries));
          readMore();
        }, function () { resolve([]); });
      })();
    });
  }

  var depth = 0;
  document.addEventListener("dragenter", function (event) {
    if (!carriesFiles(event)) return;
    depth += 1;
    document.body.classList.add("dragging-files");
  });
  document.addEventListener("dragleave", function (event) {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove("dragging-files");
  });
  document.addEventListener("dragover", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging-files");
    var items = event.dataTransfer.items;
    var entries = [];
    if (items) {
      for (var i = 0; i < items.length; i++) {
        var entry = items[i].webkitGetAsEntry && items[i].webkitGetAsEntry();
        if (entry) entries.push(entry);
      }
    }
    if (entries.length) {
      Promise.all(entries.map(filesOfEntry)).then(function (lists) {
        upload([].concat.apply([], lists));
      });
    } else {
      upload(Array.prototype.slice.call(event.dataTransfer.files || []));
    }
  });
})();
