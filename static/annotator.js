// The box annotator (templates/annotate/_annotator.html): one image, its boxes and its pending
// suggestions, drawn on a canvas and edited with the mouse and the keyboard.
//
// - State: boxes in image pixels of the upright image (x1, y1, x2, y2); a suggestion is a box
//   with `pending` set. Every edit goes through `edit()`, which keeps a snapshot for undo.
// - Saving: the whole label set with the version the page was loaded with, through the labels
//   API (PUT). Accepted suggestions are sent as labels with their id; suggestions removed from
//   the image are sent in `reject`. A 409 (someone saved since) stops saving and offers a
//   reload: nothing is overwritten silently. Saves happen after a short idle, before going to
//   another image, and (keepalive) when the page goes away.
// - The keymap below is the one table the key handler and the `?` overlay both read.

// The keymap comes from the page (`keymap` in the JSON block, from the settings page: rows of
// action, group, label, help, keys); this table is only the fallback of a page without one.
const DEFAULT_KEYMAP = [
  { group: "Images", keys: ["d", "ArrowRight"], action: "next", help: "Save, then go to the next image" },
  { group: "Images", keys: ["a", "ArrowLeft"], action: "previous", help: "Save, then go to the previous image" },
  { group: "Images", keys: ["s", "Ctrl+s"], action: "save", help: "Save now (changes also save after a moment)" },
  { group: "Images", keys: ["n"], action: "noObjects", help: "Mark (or unmark) the image as having no objects" },
  { group: "Images", keys: ["p"], action: "copyPrevious", help: "Copy every box of the previous image (the one you came from)" },
  { group: "Boxes", keys: ["w"], action: "drawMode", help: "Draw: the next drag draws a box, even over other boxes" },
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => (
    { group: "Classes", keys: [String(n % 10)], action: `class${n}`, help: `Current class ${n}; also changes the selected boxes` })),
  { group: "Boxes", keys: ["c"], action: "searchClass", help: "Search the classes by name (Enter picks, Esc goes back)" },
  { group: "Boxes", keys: ["Tab"], action: "cycleNext", help: "Select the next box" },
  { group: "Boxes", keys: ["Shift+Tab"], action: "cyclePrevious", help: "Select the previous box" },
  { group: "Boxes", keys: ["Ctrl+a"], action: "selectAll", help: "Select every box" },
  { group: "Boxes", keys: ["Delete", "Backspace"], action: "delete", help: "Delete the selected boxes" },
  { group: "Boxes", keys: ["Escape"], action: "escape", help: "Stop drawing, clear the selection" },
  { group: "Edit", keys: ["Ctrl+z"], action: "undo", help: "Undo" },
  { group: "Edit", keys: ["Ctrl+Shift+z", "Ctrl+y"], action: "redo", help: "Redo" },
  { group: "Edit", keys: ["Ctrl+c"], action: "copy", help: "Copy the selected boxes (also to paste on another image)" },
  { group: "Edit", keys: ["Ctrl+v"], action: "paste", help: "Paste the copied boxes" },
  { group: "Suggestions", keys: ["Enter"], action: "accept", help: "Accept the selected suggestion (selects the first one when none is)" },
  { group: "Suggestions", keys: ["x"], action: "reject", help: "Reject the selected suggestion" },
  { group: "Suggestions", keys: ["Shift+Enter"], action: "acceptAll", help: "Accept every suggestion on the image" },
  { group: "Suggestions", keys: ["Shift+x"], action: "rejectAll", help: "Reject every suggestion on the image" },
  { group: "View", keys: ["+", "="], action: "zoomIn", help: "Zoom in" },
  { group: "View", keys: ["-"], action: "zoomOut", help: "Zoom out" },
  { group: "View", keys: ["f"], action: "fit", help: "Fit the image to the window" },
  { group: "View", keys: ["l"], action: "toggleNames", help: "Show or hide the class names" },
  { group: "View", keys: ["?"], action: "help", help: "Show this list" },
];
// Actions a held key repeats.
const REPEATING = ["zoomIn", "zoomOut", "cycleNext", "cyclePrevious", "undo", "redo"];
const MOUSE = [
  ["Drag on empty space", "Draw a box in the current class"],
  ["Click a box", "Select it (Shift+click adds to the selection)"],
  ["Drag a box, or one of its 8 handles", "Move it, or resize it"],
  ["Wheel", "Zoom around the cursor"],
  ["Space + drag, or middle button drag", "Pan"],
  ["Two fingers (touch)", "Pinch to zoom, drag to pan"],
];

const ARROWS = { ArrowRight: "→", ArrowLeft: "←", ArrowUp: "↑", ArrowDown: "↓" };
const AUTOSAVE_MS = 800; // idle time before an edit is saved
const UNDO_LIMIT = 200;
const HANDLE_PX = 8; // handle size on screen
const CROWDED = 60; // boxes from which names show only where they fit
const DRAG_START_PX = 3; // a press that moves less is a click
const CLIPBOARD_KEY = "ydc.annotator.clipboard";
const CAME_FROM_KEY = "ydc.annotator.came-from";
const NAMES_KEY = "ydc.annotator.names";
const CURSORS = {
  nw: "nwse-resize", se: "nwse-resize", ne: "nesw-resize", sw: "nesw-resize",
  n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize",
};

// --- keys ------------------------------------------------------------------------------------

// "Ctrl+Shift+z" from an event: letters lower case with Shift named; other printable characters
// as typed (Shift is part of "?" or "+"); Meta counts as Ctrl (macOS).
function comboOf(event) {
  let key = event.key;
  if (key === " ") key = "Space";
  const letter = key.length === 1 && /[a-z]/i.test(key);
  let mods = "";
  if (event.ctrlKey || event.metaKey) mods += "Ctrl+";
  if (event.altKey) mods += "Alt+";
  if (event.shiftKey && (letter || key.length > 1)) mods += "Shift+";
  return mods + (letter ? key.toLowerCase() : key);
}

// Key -> action of a keymap's rows (the settings page refuses two actions on one key).
function actionsOf(keymap) {
  const found = new Map();
  for (const row of keymap) for (const key of row.keys) if (!found.has(key)) found.set(key, row.action);
  return found;
}

function keyLabel(key) {
  return key.split("+").map((part) => {
    if (ARROWS[part]) return ARROWS[part];
    if (part.length === 1) return part.toUpperCase();
    if (part === "Escape") return "Esc";
    return part;
  }).join("+");
}

// --- small helpers ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

function rgba(hex, alpha) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || "");
  if (!m) return `rgba(136, 136, 136, ${alpha})`;
  return `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${alpha})`;
}

function inkOn(hex) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || "");
  if (!m) return "#fff";
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h, 16) / 255);
  return 0.299 * r + 0.587 * g + 0.114 * b > 0.6 ? "#111" : "#fff";
}

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
  } catch (ignored) {
    return "";
  }
}

function storage(kind) {
  try {
    return kind === "local" ? window.localStorage : window.sessionStorage;
  } catch (ignored) {
    return null; // storage disabled: copy/paste stays within the page
  }
}

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

// --- the annotator ---------------------------------------------------------------------------

class Annotator {
  constructor(root, data) {
    this.root = root;
    this.data = data;
    this.W = data.width;
    this.H = data.height;
    this.classes = data.classes; // by position
    this.keymap = Array.isArray(data.keymap) && data.keymap.length ? data.keymap : DEFAULT_KEYMAP;
    this.actionOf = actionsOf(this.keymap);
    this.current = 0;
    this.nextKey = 1;
    this.boxes = [];
    this.noObjects = !!data.no_objects;
    this.version = data.version;
    this.knownPending = new Set(); // suggestion ids pending on the server as far as we know
    this.seenSuggestions = new Set();
    this.deadIds = new Set(); // ids the server no longer has (an undo can bring them back)
    this.selection = new Set(); // box keys
    this.undoStack = [];
    this.redoStack = [];
    this.memory = null; // the clipboard when storage is off
    this.showNames = storage("local")?.getItem(NAMES_KEY) !== "off";
    this.drawMode = false;
    this.spaceDown = false;
    this.op = null; // the pointer gesture in progress
    this.touches = new Map();
    this.hover = null;
    this.view = { s: 1, ox: 0, oy: 0, fitted: true };
    this.frameAsked = false;
    this.saving = null;
    this.saveTimer = 0;
    this.state = "saved";
    this.conflict = false;
    this.leaving = false;

    for (const b of data.labels) this.boxes.push(this.fromApi(b, false));
    for (const s of data.suggestions) {
      this.boxes.push(this.fromApi(s, true));
      this.knownPending.add(s.id);
      this.seenSuggestions.add(s.id);
    }
    this.savedSig = this.signature(this.payload());

    let cameFrom = null;
    try {
      cameFrom = JSON.parse(storage("session")?.getItem(CAME_FROM_KEY) || "null");
    } catch (ignored) { /* not ours: no previous image */ }
    this.cameFrom = cameFrom && cameFrom.project === data.project &&
      cameFrom.filename !== data.filename ? cameFrom : null;

    this.canvas = $("ann-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.stage = $("ann-stage");
    this.image = $("ann-image");
    this.imageReady = false;
    this.textWidths = new Map();
  }

  // ---- model ----

  fromApi(b, pending) {
    const { W, H } = this;
    return {
      key: this.nextKey++,
      id: b.id,
      cls: b.class_id,
      x1: (b.x - b.width / 2) * W,
      y1: (b.y - b.height / 2) * H,
      x2: (b.x + b.width / 2) * W,
      y2: (b.y + b.height / 2) * H,
      pending,
      source: b.source || "manual",
      confidence: b.confidence ?? null,
    };
  }

  newBox(cls, x1, y1, x2, y2) {
    return { key: this.nextKey++, id: null, cls, x1, y1, x2, y2, pending: false, source: "manual", confidence: null };
  }

  className(cls) {
    const c = this.classes[cls];
    return c ? c.name : `class ${cls}`;
  }

  colour(cls) {
    const c = this.classes[cls];
    return c ? c.colour : "#888888";
  }

  byKey(key) {
    return this.boxes.find((b) => b.key === key);
  }

  selectedBoxes() {
    return this.boxes.filter((b) => this.selection.has(b.key));
  }

  snapshot() {
    return { boxes: this.boxes.map((b) => ({ ...b })), noObjects: this.noObjects };
  }

  restore(snap) {
    this.boxes = snap.boxes.map((b) => ({ ...b }));
    this.noObjects = snap.noObjects;
    for (const key of [...this.selection]) if (!this.byKey(key)) this.selection.delete(key);
  }

  pushUndo(snap) {
    this.undoStack.push(snap);
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
    this.redoStack = [];
  }

  // Every change of the label set: snapshot for undo, change, then redraw, relist and save.
  edit(change) {
    const before = this.snapshot();
    if (change() === false) return;
    this.pushUndo(before);
    this.changed();
  }

  changed() {
    this.renderList();
    this.refreshPanels();
    this.requestDraw();
    this.updateStatus();
    this.scheduleSave();
  }

  undo() {
    const snap = this.undoStack.pop();
    if (!snap) return this.say("Nothing to undo.");
    this.redoStack.push(this.snapshot());
    this.restore(snap);
    this.changed();
  }

  redo() {
    const snap = this.redoStack.pop();
    if (!snap) return this.say("Nothing to redo.");
    this.undoStack.push(this.snapshot());
    this.restore(snap);
    this.changed();
  }

  // ---- saving ----

  payload() {
    const { W, H } = this;
    const labels = [];
    const present = new Set();
    for (const b of this.boxes) {
      if (b.id !== null) present.add(b.id);
      if (b.pending) continue;
      labels.push({
        id: b.id !== null && !this.deadIds.has(b.id) ? b.id : null,
        class_id: b.cls,
        x: (b.x1 + b.x2) / 2 / W,
        y: (b.y1 + b.y2) / 2 / H,
        width: (b.x2 - b.x1) / W,
        height: (b.y2 - b.y1) / H,
        key: b.key,
      });
    }
    const reject = [...this.knownPending].filter((id) => !present.has(id)).sort((a, b) => a - b);
    return { version: this.version, labels, no_objects: this.noObjects, reject };
  }

  signature(p) {
    const f = (v) => v.toFixed(7);
    const labels = p.labels.map((l) => `${l.id ?? "new"}:${l.class_id}:${f(l.x)}:${f(l.y)}:${f(l.width)}:${f(l.height)}`);
    return JSON.stringify([labels, p.no_objects, p.reject]);
  }

  dirty() {
    return this.signature(this.payload()) !== this.savedSig;
  }

  scheduleSave(delay = AUTOSAVE_MS) {
    clearTimeout(this.saveTimer);
    if (this.conflict) return;
    this.saveTimer = setTimeout(() => {
      if (this.op) return this.scheduleSave(); // wait for the drag to end
      this.save();
    }, delay);
  }

  // Save until the server holds what the page shows; true when it does.
  async flush() {
    clearTimeout(this.saveTimer);
    for (let i = 0; i < 5; i++) {
      if (this.saving) await this.saving;
      if (this.conflict) return false;
      if (!this.dirty()) return true;
      if (!(await this.save())) return false;
    }
    return !this.dirty();
  }

  save() {
    if (this.saving) return this.saving.then(() => this.save());
    if (this.conflict) return Promise.resolve(false);
    clearTimeout(this.saveTimer);
    const sent = this.payload();
    if (this.signature(sent) === this.savedSig) {
      this.updateStatus();
      return Promise.resolve(true);
    }
    const body = {
      version: sent.version,
      no_objects: sent.no_objects,
      reject: sent.reject,
      labels: sent.labels.map(({ key, ...label }) => label),
    };
    this.setStatus("saving", "Saving…");
    this.saving = this.send(body).then((outcome) => {
      this.saving = null;
      if (outcome.answer) this.saved(sent, outcome.answer);
      else if (outcome.status === 409) this.stale(outcome.detail);
      else this.failed(outcome.detail);
      return !!outcome.answer;
    });
    return this.saving;
  }

  // One PUT: the answer's body on success, else its status and a message for a person.
  async send(body) {
    const started = performance.now();
    let response;
    try {
      response = await fetch(this.data.labels_url, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(body),
      });
    } catch (ignored) {
      return { status: 0, detail: "Not saved: the server could not be reached. Is ydc still running?" };
    }
    const answer = await response.json().catch(() => null);
    this.root.dataset.saveMs = String(Math.round(performance.now() - started));
    if (response.ok && answer) return { status: response.status, answer };
    const detail = answer && typeof answer.detail === "string" ? answer.detail : null;
    if (response.status === 409) return { status: 409, detail };
    return { status: response.status, detail: `Not saved: ${detail || `the server answered ${response.status}`}` };
  }

  // The server took `sent`: learn the ids it gave the new boxes, its version and suggestions.
  saved(sent, answer) {
    this.version = answer.version;
    const sentIds = new Set(sent.labels.filter((l) => l.id !== null).map((l) => l.id));
    const fresh = answer.labels.filter((l) => !sentIds.has(l.id));
    const close = (a, b) => a.class_id === b.class_id && Math.abs(a.x - b.x) < 1e-5 &&
      Math.abs(a.y - b.y) < 1e-5 && Math.abs(a.width - b.width) < 1e-5 && Math.abs(a.height - b.height) < 1e-5;
    const ids = new Map(); // box key -> new id
    for (const label of sent.labels) {
      if (label.id !== null) continue;
      const i = fresh.findIndex((f) => close(f, label));
      if (i === -1) continue;
      ids.set(label.key, fresh[i].id);
      label.id = fresh[i].id;
      fresh.splice(i, 1);
    }
    const named = (b) => { if (ids.has(b.key)) b.id = ids.get(b.key); };
    this.boxes.forEach(named);
    for (const snap of [...this.undoStack, ...this.redoStack]) snap.boxes.forEach(named);

    const alive = new Set([...answer.labels, ...answer.suggestions].map((b) => b.id));
    for (const label of sent.labels) if (label.id !== null && !alive.has(label.id)) this.deadIds.add(label.id);
    for (const id of [...sent.reject, ...this.knownPending]) if (!alive.has(id)) this.deadIds.add(id);
    this.knownPending = new Set(answer.suggestions.map((s) => s.id));
    // Suggestions that arrived since the page loaded (auto-labelling) join the image; those the
    // server no longer holds as pending leave it.
    let added = false;
    for (const s of answer.suggestions) {
      if (this.seenSuggestions.has(s.id)) continue;
      this.seenSuggestions.add(s.id);
      this.boxes.push(this.fromApi(s, true));
      added = true;
    }
    const before = this.boxes.length;
    this.boxes = this.boxes.filter((b) => !b.pending || this.knownPending.has(b.id));
    sent.reject = [];
    this.savedSig = this.signature(sent);
    if (added || this.boxes.length !== before) {
      this.renderList();
      this.refreshPanels();
      this.requestDraw();
    }
    this.hideAlert();
    this.updateStatus();
    if (this.dirty()) this.scheduleSave();
  }

  stale(detail) {
    this.conflict = true;
    clearTimeout(this.saveTimer);
    this.setStatus("conflict", "Not saved: changed elsewhere");
    this.showAlert(
      "Not saved: this image was saved from somewhere else (another tab or person) after you " +
      "opened it. Reload to see its saved boxes; yours go to the clipboard, so Ctrl+V after " +
      "the reload pastes them back.",
      { reload: true, title: detail },
    );
  }

  failed(message) {
    this.setStatus("error", message);
    this.showAlert(message, { retry: true });
  }

  updateStatus() {
    if (this.conflict || this.saving) return;
    if (this.dirty()) this.setStatus("dirty", "Unsaved changes");
    else this.setStatus("saved", "All changes saved");
  }

  setStatus(state, text) {
    this.state = state;
    const status = $("ann-status");
    status.dataset.state = state;
    status.textContent = text;
    status.title = text;
    this.root.dataset.state = state;
  }

  showAlert(text, { reload = false, retry = false, title = null } = {}) {
    $("ann-alert-text").textContent = text;
    $("ann-alert-text").title = title || "";
    $("ann-reload").hidden = !reload;
    $("ann-retry").hidden = !retry;
    $("ann-alert").hidden = false;
  }

  hideAlert() {
    $("ann-alert").hidden = true;
  }

  // The page is going away with unsaved changes: one last request that outlives it.
  saveOnLeave() {
    if (this.conflict || this.saving || !this.dirty()) return;
    const sent = this.payload();
    fetch(this.data.labels_url, {
      method: "PUT",
      credentials: "same-origin",
      keepalive: true,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify({ ...sent, labels: sent.labels.map(({ key, ...l }) => l) }),
    }).catch(() => {});
  }

  async go(which) {
    const target = this.data[which];
    if (!target) {
      return this.say(which === "next" ? "This is the last image." : "This is the first image.");
    }
    if (this.leaving) return;
    this.leaving = true;
    const ok = await this.flush();
    if (!ok) {
      this.leaving = false;
      return this.say("Not moving on: this image is not saved yet.");
    }
    this.leaveTo(target.url);
  }

  leaveTo(url) {
    storage("session")?.setItem(CAME_FROM_KEY, JSON.stringify({
      project: this.data.project, filename: this.data.filename, labels_url: this.data.labels_url,
    }));
    window.location.assign(url);
  }

  // ---- actions (the keymap's and the buttons') ----

  pickClass(position) {
    if (!this.classes.length) return this.say("This project has no classes yet.");
    if (position < 0 || position >= this.classes.length) {
      return this.say(`There is no class ${position + 1}: the project has ${this.classes.length}.`);
    }
    this.current = position;
    this.refreshCurrent();
    const chosen = this.selectedBoxes();
    if (chosen.length && chosen.some((b) => b.cls !== position || b.pending)) {
      this.edit(() => {
        for (const b of chosen) {
          b.cls = position;
          b.pending = false; // changing a suggestion accepts it, in the new class
        }
      });
    }
  }

  deleteSelected() {
    const chosen = this.selectedBoxes();
    if (!chosen.length) return this.say("Select a box first.");
    this.edit(() => {
      this.boxes = this.boxes.filter((b) => !this.selection.has(b.key));
      this.selection.clear();
    });
  }

  selectOnly(keys) {
    this.selection = new Set(keys);
    this.selectionChanged();
  }

  selectionChanged() {
    this.refreshListSelection();
    this.refreshPanels();
    this.requestDraw();
  }

  cycle(step) {
    if (!this.boxes.length) return;
    const keys = this.boxes.map((b) => b.key);
    const at = keys.findIndex((k) => this.selection.has(k));
    const next = at === -1 ? (step > 0 ? 0 : keys.length - 1) : (at + step + keys.length) % keys.length;
    this.selectOnly([keys[next]]);
    this.reveal(this.byKey(keys[next]));
  }

  nextPending(after) {
    const pending = this.boxes.filter((b) => b.pending);
    if (!pending.length) return null;
    const i = this.boxes.findIndex((b) => b.key === after);
    return this.boxes.slice(i + 1).find((b) => b.pending) || pending[0];
  }

  accept() {
    const chosen = this.selectedBoxes().filter((b) => b.pending);
    if (!chosen.length) return this.selectFirstPending();
    const last = chosen[chosen.length - 1].key;
    this.edit(() => {
      for (const b of chosen) b.pending = false;
      this.noObjects = false;
    });
    const next = this.nextPending(last);
    this.selectOnly(next ? [next.key] : []);
    this.say(`Accepted ${chosen.length === 1 ? "the suggestion" : chosen.length + " suggestions"}.`);
  }

  reject() {
    const chosen = this.selectedBoxes().filter((b) => b.pending);
    if (!chosen.length) return this.selectFirstPending();
    const last = chosen[chosen.length - 1].key;
    const next = this.nextPending(last);
    this.edit(() => {
      const gone = new Set(chosen.map((b) => b.key));
      this.boxes = this.boxes.filter((b) => !gone.has(b.key));
    });
    this.selectOnly(next && this.byKey(next.key) ? [next.key] : []);
    this.say(`Rejected ${chosen.length === 1 ? "the suggestion" : chosen.length + " suggestions"}.`);
  }

  selectFirstPending() {
    const first = this.boxes.find((b) => b.pending);
    if (!first) return this.say("This image has no suggestions to review.");
    this.selectOnly([first.key]);
    this.reveal(first);
    this.say("Enter accepts the selected suggestion, X rejects it.");
  }

  acceptAll() {
    const pending = this.boxes.filter((b) => b.pending);
    if (!pending.length) return this.say("This image has no suggestions to review.");
    this.edit(() => {
      for (const b of pending) b.pending = false;
      this.noObjects = false;
    });
    this.say(`Accepted ${pending.length} suggestion${pending.length === 1 ? "" : "s"}.`);
  }

  rejectAll() {
    const pending = this.boxes.filter((b) => b.pending);
    if (!pending.length) return this.say("This image has no suggestions to review.");
    this.edit(() => {
      this.boxes = this.boxes.filter((b) => !b.pending);
      for (const b of pending) this.selection.delete(b.key);
    });
    this.say(`Rejected ${pending.length} suggestion${pending.length === 1 ? "" : "s"}.`);
  }

  toggleNoObjects() {
    if (this.noObjects) {
      this.edit(() => { this.noObjects = false; });
      return this.say("No longer marked as having no objects.");
    }
    const removed = this.boxes.length;
    this.edit(() => {
      this.boxes = [];
      this.selection.clear();
      this.noObjects = true;
    });
    this.say(removed
      ? `Marked as having no objects: ${removed} box${removed === 1 ? "" : "es"} removed (Ctrl+Z brings them back).`
      : "Marked as having no objects.");
  }

  // Boxes given in fractions of an image (the clipboard, another image) become boxes here.
  addNormalised(items, what) {
    const { W, H } = this;
    const made = [];
    for (const it of items) {
      const x1 = clamp((it.x - it.width / 2) * W, 0, W);
      const y1 = clamp((it.y - it.height / 2) * H, 0, H);
      const x2 = clamp((it.x + it.width / 2) * W, 0, W);
      const y2 = clamp((it.y + it.height / 2) * H, 0, H);
      if (x2 - x1 < 1 || y2 - y1 < 1) continue;
      made.push(this.newBox(it.class_id, x1, y1, x2, y2));
    }
    if (!made.length) return this.say(`No box to add from ${what}.`);
    this.edit(() => {
      this.boxes.push(...made);
      this.noObjects = false;
    });
    this.selectOnly(made.map((b) => b.key));
    this.say(`Added ${made.length} box${made.length === 1 ? "" : "es"} from ${what}.`);
  }

  copy() {
    const chosen = this.selectedBoxes();
    if (!chosen.length) return this.say("Select boxes to copy first (Ctrl+A selects all).");
    this.toClipboard(chosen);
    this.say(`Copied ${chosen.length} box${chosen.length === 1 ? "" : "es"}.`);
  }

  toClipboard(boxes) {
    const { W, H } = this;
    const clip = {
      project: this.data.project,
      boxes: boxes.map((b) => ({
        class_id: b.cls,
        class_name: this.className(b.cls),
        x: (b.x1 + b.x2) / 2 / W,
        y: (b.y1 + b.y2) / 2 / H,
        width: (b.x2 - b.x1) / W,
        height: (b.y2 - b.y1) / H,
      })),
    };
    this.memory = clip;
    try {
      storage("local")?.setItem(CLIPBOARD_KEY, JSON.stringify(clip));
    } catch (ignored) { /* full: the page's own copy still works */ }
  }

  paste() {
    let clip = this.memory;
    try {
      clip = JSON.parse(storage("local")?.getItem(CLIPBOARD_KEY) || "null") || clip;
    } catch (ignored) { /* keep the page's copy */ }
    if (!clip || !clip.boxes || !clip.boxes.length) return this.say("Nothing copied yet: Ctrl+C copies the selected boxes.");
    let items = clip.boxes;
    if (clip.project !== this.data.project) {
      // Another project: classes match by name.
      const byName = new Map(this.classes.map((c) => [c.name.toLowerCase(), c.position]));
      items = items.filter((it) => byName.has(String(it.class_name).toLowerCase()))
        .map((it) => ({ ...it, class_id: byName.get(String(it.class_name).toLowerCase()) }));
      if (!items.length) return this.say(`None of the copied boxes' classes exist in ${this.data.project}.`);
    }
    items = items.filter((it) => it.class_id >= 0 && it.class_id < this.classes.length);
    this.addNormalised(items, "the clipboard");
  }

  async copyPrevious() {
    const source = this.cameFrom || this.data.previous;
    if (!source) return this.say("There is no previous image.");
    this.say(`Fetching the boxes of ${source.filename}…`);
    try {
      const response = await fetch(source.labels_url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return this.say(`Could not read the boxes of ${source.filename} (${response.status}).`);
      const answer = await response.json();
      if (!answer.labels.length) return this.say(`${source.filename} has no boxes to copy.`);
      this.addNormalised(answer.labels, source.filename);
    } catch (ignored) {
      this.say("The server could not be reached.");
    }
  }

  searchClass() {
    const input = $("ann-class-search");
    if (!input) return this.say("This project has no classes yet.");
    input.focus();
    input.select();
  }

  filterClasses() {
    const input = $("ann-class-search");
    const wanted = input.value.trim().toLowerCase();
    let shown = 0;
    for (const li of $("ann-classes").children) {
      const match = !wanted || li.dataset.name.includes(wanted);
      li.hidden = !match;
      if (match) shown++;
    }
    $("ann-no-class-match").hidden = shown > 0;
  }

  pickSearched() {
    const first = [...$("ann-classes").children].find((li) => !li.hidden);
    if (!first) return;
    const input = $("ann-class-search");
    input.value = "";
    this.filterClasses();
    this.canvas.focus();
    this.pickClass(Number(first.dataset.position));
  }

  toggleNames() {
    this.showNames = !this.showNames;
    storage("local")?.setItem(NAMES_KEY, this.showNames ? "on" : "off");
    this.requestDraw();
  }

  help() {
    const dialog = $("ann-help");
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  escape() {
    if (this.op && this.op.kind !== "pan") this.cancelOp();
    this.drawMode = false;
    this.root.classList.remove("drawing");
    if (this.selection.size) this.selectOnly([]);
    this.requestDraw();
  }

  run(action, combo) {
    switch (action) {
      case "next": return this.go("next");
      case "previous": return this.go("previous");
      case "save": return this.flush();
      case "noObjects": return this.toggleNoObjects();
      case "copyPrevious": return this.copyPrevious();
      case "drawMode":
        if (!this.classes.length) return this.say("This project has no classes yet.");
        this.drawMode = true;
        this.root.classList.add("drawing");
        return this.say("Drag to draw a box (Esc stops).");
      case "searchClass": return this.searchClass();
      case "cycleNext": return this.cycle(1);
      case "cyclePrevious": return this.cycle(-1);
      case "selectAll": return this.selectOnly(this.boxes.map((b) => b.key));
      case "delete": return this.deleteSelected();
      case "escape": return this.escape();
      case "undo": return this.undo();
      case "redo": return this.redo();
      case "copy": return this.copy();
      case "paste": return this.paste();
      case "accept": return this.accept();
      case "reject": return this.reject();
      case "acceptAll": return this.acceptAll();
      case "rejectAll": return this.rejectAll();
      case "zoomIn": return this.zoomBy(1.25);
      case "zoomOut": return this.zoomBy(0.8);
      case "fit": return this.fit();
      case "toggleNames": return this.toggleNames();
      case "help": return this.help();
      default: {
        const n = /^class(\d+)$/.exec(action);
        return n ? this.pickClass(Number(n[1]) - 1) : undefined;
      }
    }
  }

  onKey(event) {
    if (event.defaultPrevented || event.isComposing) return;
    const dialog = $("ann-help");
    if (dialog.open) {
      if (this.actionOf.get(comboOf(event)) === "help") { event.preventDefault(); dialog.close(); }
      return; // Esc closes the dialog itself
    }
    if (typing(event.target)) return;
    const combo = comboOf(event);
    // A focused control keeps Tab, Enter and Space for itself (the panel stays reachable).
    const onControl = event.target instanceof HTMLElement && event.target !== this.canvas &&
      !!event.target.closest("button, a, summary, dialog");
    if (onControl && /^(Shift\+)?(Tab|Enter|Space)$/.test(combo)) return;
    if (combo === "Space") {
      event.preventDefault();
      if (!this.spaceDown) {
        this.spaceDown = true;
        this.root.classList.add("panning");
      }
      return;
    }
    const action = this.actionOf.get(combo);
    if (!action) return;
    // Text selected on the page and no box selected: Ctrl+C copies the text.
    if (action === "copy" && !this.selection.size && String(window.getSelection() || "")) return;
    event.preventDefault();
    if (event.repeat && !REPEATING.includes(action)) return;
    this.run(action, combo);
  }

  onKeyUp(event) {
    if (event.key === " ") {
      this.spaceDown = false;
      this.root.classList.remove("panning");
    }
  }

  say(text) {
    const line = $("ann-message");
    line.textContent = text;
    line.hidden = false;
    clearTimeout(this.sayTimer);
    this.sayTimer = setTimeout(() => { line.hidden = true; }, 4000);
  }

  // ---- view ----

  // The stage fills the window below what is above it (the header and the bar).
  placeStage() {
    const top = Math.round(this.stage.getBoundingClientRect().top + window.scrollY);
    this.root.style.setProperty("--above", `${top}px`);
  }

  resize() {
    const rect = this.stage.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.cw = Math.max(1, Math.floor(rect.width));
    this.ch = Math.max(1, Math.floor(rect.height));
    this.canvas.width = Math.round(this.cw * dpr);
    this.canvas.height = Math.round(this.ch * dpr);
    this.canvas.style.width = `${this.cw}px`;
    this.canvas.style.height = `${this.ch}px`;
    if (this.view.fitted) this.fit();
    else this.requestDraw();
  }

  // The whole image in view; never enlarged, so a small image shows one screen pixel per pixel.
  fit() {
    const margin = 8;
    const s = Math.min(1, (this.cw - 2 * margin) / this.W, (this.ch - 2 * margin) / this.H);
    this.view = {
      s,
      ox: Math.round((this.cw - this.W * s) / 2),
      oy: Math.round((this.ch - this.H * s) / 2),
      fitted: true,
    };
    this.viewChanged();
  }

  zoomAt(factor, sx, sy) {
    const { s, ox, oy } = this.view;
    const fitS = Math.min(1, this.cw / this.W, this.ch / this.H);
    const next = clamp(s * factor, fitS / 4, 40);
    const ix = (sx - ox) / s;
    const iy = (sy - oy) / s;
    this.view = { s: next, ox: sx - ix * next, oy: sy - iy * next, fitted: false };
    this.viewChanged();
  }

  zoomBy(factor) {
    this.zoomAt(factor, this.cw / 2, this.ch / 2);
  }

  viewChanged() {
    $("ann-zoom").textContent = `${Math.round(this.view.s * 100)}%`;
    this.requestDraw();
  }

  // Pan just enough to show the box.
  reveal(box) {
    if (!box) return;
    const { s, ox, oy } = this.view;
    const [x1, y1, x2, y2] = [ox + box.x1 * s, oy + box.y1 * s, ox + box.x2 * s, oy + box.y2 * s];
    let dx = 0;
    let dy = 0;
    if (x1 < 0) dx = -x1 + 20; else if (x2 > this.cw) dx = this.cw - x2 - 20;
    if (y1 < 0) dy = -y1 + 20; else if (y2 > this.ch) dy = this.ch - y2 - 20;
    if (dx || dy) {
      this.view = { ...this.view, ox: ox + dx, oy: oy + dy, fitted: false };
      this.viewChanged();
    }
  }

  toImage(sx, sy) {
    const { s, ox, oy } = this.view;
    return [(sx - ox) / s, (sy - oy) / s];
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  // ---- drawing ----

  requestDraw() {
    if (this.frameAsked) return;
    this.frameAsked = true;
    requestAnimationFrame(() => {
      this.frameAsked = false;
      this.draw();
    });
  }

  textWidth(text) {
    let w = this.textWidths.get(text);
    if (w === undefined) {
      w = this.ctx.measureText(text).width;
      this.textWidths.set(text, w);
    }
    return w;
  }

  draw() {
    const { ctx, W, H } = this;
    const { s, ox, oy } = this.view;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#2a2e35";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr * s, 0, 0, dpr * s, dpr * ox, dpr * oy);
    ctx.imageSmoothingEnabled = s < 2;
    if (this.imageReady) {
      ctx.drawImage(this.image, 0, 0, W, H);
      this.canvas.dataset.image = "drawn";
    } else {
      ctx.fillStyle = "#555b66";
      ctx.fillRect(0, 0, W, H);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textBaseline = "middle";

    const selected = [];
    const ordered = [];
    for (const b of this.boxes) (this.selection.has(b.key) ? selected : ordered).push(b);
    // Suggestions first (under), then labels, then the selection on top.
    ordered.sort((a, b) => (b.pending ? 1 : 0) - (a.pending ? 1 : 0));
    const all = ordered.concat(selected);
    for (const b of all) this.drawBox(b, ox + b.x1 * s, oy + b.y1 * s, (b.x2 - b.x1) * s, (b.y2 - b.y1) * s);
    if (this.showNames) {
      // Among many boxes, a name shows where its box is wide enough on screen (zoom in for the
      // rest), and always on the selection.
      const crowded = all.length > CROWDED;
      for (const b of all) {
        if (crowded && !this.selection.has(b.key) && (b.x2 - b.x1) * s < this.textWidth(this.nameOf(b)) + 8) continue;
        this.drawName(b, ox + b.x1 * s, oy + b.y1 * s);
      }
    }
    if (selected.length === 1) this.drawHandles(selected[0]);
    const op = this.op;
    if (op && op.kind === "draw" && op.started) {
      const [x1, y1, x2, y2] = this.drawnRect(op);
      ctx.setLineDash([5, 3]);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#fff";
      ctx.strokeRect(ox + x1 * s, oy + y1 * s, (x2 - x1) * s, (y2 - y1) * s);
      ctx.strokeStyle = this.colour(this.current);
      ctx.lineDashOffset = 4;
      ctx.strokeRect(ox + x1 * s, oy + y1 * s, (x2 - x1) * s, (y2 - y1) * s);
      ctx.lineDashOffset = 0;
      ctx.setLineDash([]);
    }
    if ((this.drawMode || (op && op.kind === "draw")) && this.hover) {
      // Guides across the image at the cursor, for a precise corner.
      const [hx, hy] = this.hover;
      ctx.strokeStyle = "rgba(255, 255, 255, 0.55)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.max(ox, 0), Math.round(hy) + 0.5);
      ctx.lineTo(Math.min(ox + W * s, this.cw), Math.round(hy) + 0.5);
      ctx.moveTo(Math.round(hx) + 0.5, Math.max(oy, 0));
      ctx.lineTo(Math.round(hx) + 0.5, Math.min(oy + H * s, this.ch));
      ctx.stroke();
    }
  }

  drawBox(b, x, y, w, h) {
    const { ctx } = this;
    const colour = this.colour(b.cls);
    const chosen = this.selection.has(b.key);
    if (chosen) {
      ctx.fillStyle = rgba(colour, 0.2);
      ctx.fillRect(x, y, w, h);
    }
    const width = chosen ? 3 : 2;
    if (b.pending) ctx.setLineDash([6, 4]);
    // A dark edge under the colour keeps a box visible on any image.
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.45)";
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = width;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    if (b.pending) ctx.setLineDash([]);
  }

  nameOf(b) {
    const name = this.className(b.cls);
    if (!b.pending) return name;
    return b.confidence === null ? `${name} ?` : `${name} ${b.confidence.toFixed(2)}?`;
  }

  drawName(b, x, y) {
    const { ctx } = this;
    const colour = this.colour(b.cls);
    const text = this.nameOf(b);
    const w = this.textWidth(text) + 8;
    const top = y >= 16 ? y - 16 : y;
    ctx.fillStyle = b.pending ? rgba(colour, 0.75) : colour;
    ctx.fillRect(x - 1, top, w, 16);
    ctx.fillStyle = inkOn(colour);
    ctx.fillText(text, x + 3, top + 8.5);
  }

  handles(b) {
    const { s, ox, oy } = this.view;
    const [x1, y1, x2, y2] = [ox + b.x1 * s, oy + b.y1 * s, ox + b.x2 * s, oy + b.y2 * s];
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    return [["nw", x1, y1], ["n", mx, y1], ["ne", x2, y1], ["e", x2, my],
      ["se", x2, y2], ["s", mx, y2], ["sw", x1, y2], ["w", x1, my]];
  }

  drawHandles(b) {
    const { ctx } = this;
    const half = HANDLE_PX / 2;
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = this.colour(b.cls);
    ctx.fillStyle = "#fff";
    for (const [, x, y] of this.handles(b)) {
      ctx.fillRect(x - half, y - half, HANDLE_PX, HANDLE_PX);
      ctx.strokeRect(x - half, y - half, HANDLE_PX, HANDLE_PX);
    }
  }

  // ---- hit tests ----

  handleAt(sx, sy) {
    const chosen = this.selectedBoxes();
    if (chosen.length !== 1) return null;
    const reach = HANDLE_PX / 2 + 3;
    for (const [name, x, y] of this.handles(chosen[0])) {
      if (Math.abs(sx - x) <= reach && Math.abs(sy - y) <= reach) return { box: chosen[0], handle: name };
    }
    return null;
  }

  // The smallest box under the point (a box inside a bigger one stays reachable).
  boxAt(ix, iy) {
    const slack = 2 / this.view.s;
    let best = null;
    let bestArea = Infinity;
    for (const b of this.boxes) {
      if (ix < b.x1 - slack || ix > b.x2 + slack || iy < b.y1 - slack || iy > b.y2 + slack) continue;
      const area = (b.x2 - b.x1) * (b.y2 - b.y1);
      if (area < bestArea) {
        best = b;
        bestArea = area;
      }
    }
    return best;
  }

  // ---- pointer gestures ----

  onPointerDown(event) {
    if (event.pointerType === "touch") {
      this.touches.set(event.pointerId, this.point(event));
      if (this.touches.size === 2) {
        this.cancelOp();
        const [a, b] = [...this.touches.values()];
        this.op = { kind: "pinch", a, b, view: { ...this.view } };
        return;
      }
      if (this.touches.size > 2) return;
    }
    const [sx, sy] = this.point(event);
    const panning = event.button === 1 || (event.button === 0 && this.spaceDown);
    if (!panning && event.button !== 0) return;
    event.preventDefault();
    this.canvas.focus({ preventScroll: true });
    this.canvas.setPointerCapture(event.pointerId);
    if (panning) {
      this.op = { kind: "pan", sx, sy, ox: this.view.ox, oy: this.view.oy, pointer: event.pointerId };
      this.root.classList.add("grabbing");
      return;
    }
    const [ix, iy] = this.toImage(sx, sy);
    if (this.drawMode) {
      this.startDraw(event, sx, sy, ix, iy);
      return;
    }
    const grip = this.handleAt(sx, sy);
    if (grip) {
      const b = grip.box;
      this.op = {
        kind: "resize", pointer: event.pointerId, sx, sy, box: b.key, handle: grip.handle,
        orig: { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 }, before: this.snapshot(), started: false,
      };
      return;
    }
    const hit = this.boxAt(ix, iy);
    if (hit) {
      if (event.shiftKey) {
        if (this.selection.has(hit.key)) this.selection.delete(hit.key);
        else this.selection.add(hit.key);
        this.selectionChanged();
        return;
      }
      if (!this.selection.has(hit.key)) this.selectOnly([hit.key]);
      const moving = this.selectedBoxes();
      this.op = {
        kind: "move", pointer: event.pointerId, sx, sy, before: this.snapshot(), started: false,
        orig: moving.map((b) => ({ key: b.key, x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 })),
      };
      return;
    }
    if (!event.shiftKey && this.selection.size) this.selectOnly([]);
    this.startDraw(event, sx, sy, ix, iy);
  }

  startDraw(event, sx, sy, ix, iy) {
    if (!this.classes.length) {
      this.say("This project has no classes yet: add them on the project page first.");
      return;
    }
    this.op = {
      kind: "draw", pointer: event.pointerId, sx, sy,
      ix: clamp(ix, 0, this.W), iy: clamp(iy, 0, this.H), jx: ix, jy: iy, started: false,
    };
  }

  drawnRect(op) {
    const jx = clamp(op.jx, 0, this.W);
    const jy = clamp(op.jy, 0, this.H);
    return [Math.min(op.ix, jx), Math.min(op.iy, jy), Math.max(op.ix, jx), Math.max(op.iy, jy)];
  }

  onPointerMove(event) {
    if (event.pointerType === "touch" && this.touches.has(event.pointerId)) {
      this.touches.set(event.pointerId, this.point(event));
      if (this.op && this.op.kind === "pinch") return this.pinch();
    }
    const [sx, sy] = this.point(event);
    this.hover = [sx, sy];
    const op = this.op;
    if (!op) {
      this.updateCursor(sx, sy);
      if (this.drawMode) this.requestDraw();
      return;
    }
    if (op.pointer !== event.pointerId) return;
    if (!op.started && Math.hypot(sx - op.sx, sy - op.sy) >= DRAG_START_PX) op.started = true;
    const s = this.view.s;
    const dx = (sx - op.sx) / s;
    const dy = (sy - op.sy) / s;
    if (op.kind === "pan") {
      this.view = { ...this.view, ox: op.ox + (sx - op.sx), oy: op.oy + (sy - op.sy), fitted: false };
      this.viewChanged();
    } else if (op.kind === "draw") {
      [op.jx, op.jy] = this.toImage(sx, sy);
      this.requestDraw();
    } else if (op.kind === "move" && op.started) {
      this.moveBoxes(op, dx, dy);
    } else if (op.kind === "resize" && op.started) {
      this.resizeBox(op, dx, dy);
    }
  }

  moveBoxes(op, dx, dy) {
    const { W, H } = this;
    const minX = Math.min(...op.orig.map((o) => o.x1));
    const minY = Math.min(...op.orig.map((o) => o.y1));
    const maxX = Math.max(...op.orig.map((o) => o.x2));
    const maxY = Math.max(...op.orig.map((o) => o.y2));
    dx = clamp(dx, -minX, W - maxX);
    dy = clamp(dy, -minY, H - maxY);
    for (const o of op.orig) {
      const b = this.byKey(o.key);
      if (!b) continue;
      b.x1 = o.x1 + dx; b.x2 = o.x2 + dx;
      b.y1 = o.y1 + dy; b.y2 = o.y2 + dy;
    }
    this.requestDraw();
  }

  resizeBox(op, dx, dy) {
    const b = this.byKey(op.box);
    if (!b) return;
    const { W, H } = this;
    const o = op.orig;
    const h = op.handle;
    let { x1, y1, x2, y2 } = o;
    if (h.includes("w")) x1 = clamp(o.x1 + dx, 0, o.x2 - 1);
    if (h.includes("e")) x2 = clamp(o.x2 + dx, o.x1 + 1, W);
    if (h.includes("n")) y1 = clamp(o.y1 + dy, 0, o.y2 - 1);
    if (h.includes("s")) y2 = clamp(o.y2 + dy, o.y1 + 1, H);
    Object.assign(b, { x1, y1, x2, y2 });
    this.requestDraw();
  }

  onPointerUp(event) {
    if (event.pointerType === "touch") {
      this.touches.delete(event.pointerId);
      if (this.op && this.op.kind === "pinch") {
        if (this.touches.size < 2) this.op = null;
        return;
      }
    }
    const op = this.op;
    if (!op || op.pointer !== event.pointerId) return;
    this.op = null;
    this.root.classList.remove("grabbing");
    if (op.kind === "draw") {
      if (!op.started) return this.requestDraw();
      [op.jx, op.jy] = this.toImage(...this.point(event));
      const [x1, y1, x2, y2] = this.drawnRect(op);
      this.drawMode = false;
      this.root.classList.remove("drawing");
      if (x2 - x1 < 1 || y2 - y1 < 1) {
        this.requestDraw();
        return this.say("Too small: a box is at least one pixel wide and high.");
      }
      const box = this.newBox(this.current, x1, y1, x2, y2);
      this.edit(() => {
        this.boxes.push(box);
        this.noObjects = false;
      });
      this.selectOnly([box.key]);
    } else if ((op.kind === "move" || op.kind === "resize") && op.started) {
      // Moving or resizing a suggestion accepts it.
      const keys = op.kind === "move" ? op.orig.map((o) => o.key) : [op.box];
      for (const key of keys) {
        const b = this.byKey(key);
        if (b && b.pending) {
          b.pending = false;
          this.noObjects = false;
        }
      }
      this.pushUndo(op.before);
      this.changed();
    } else {
      this.requestDraw();
    }
  }

  cancelOp() {
    const op = this.op;
    this.op = null;
    if (op && op.before && op.started) {
      this.restore(op.before);
      this.changed();
    }
    this.requestDraw();
  }

  pinch() {
    const op = this.op;
    const [a, b] = [...this.touches.values()];
    const before = Math.hypot(op.a[0] - op.b[0], op.a[1] - op.b[1]) || 1;
    const now = Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
    const v = op.view;
    const fitS = Math.min(1, this.cw / this.W, this.ch / this.H);
    const s = clamp(v.s * (now / before), fitS / 4, 40);
    const [mx0, my0] = [(op.a[0] + op.b[0]) / 2, (op.a[1] + op.b[1]) / 2];
    const [mx, my] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
    const ix = (mx0 - v.ox) / v.s;
    const iy = (my0 - v.oy) / v.s;
    this.view = { s, ox: mx - ix * s, oy: my - iy * s, fitted: false };
    this.viewChanged();
  }

  updateCursor(sx, sy) {
    let cursor = "crosshair";
    if (this.spaceDown) cursor = "grab";
    else if (!this.drawMode) {
      const grip = this.handleAt(sx, sy);
      if (grip) cursor = CURSORS[grip.handle];
      else if (this.boxAt(...this.toImage(sx, sy))) cursor = "move";
    }
    if (this.canvas.style.cursor !== cursor) this.canvas.style.cursor = cursor;
  }

  onWheel(event) {
    event.preventDefault();
    const [sx, sy] = this.point(event);
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    this.zoomAt(Math.exp(-clamp(delta, -200, 200) * 0.002), sx, sy);
  }

  // ---- the side panel ----

  renderList() {
    const list = $("ann-boxes");
    const items = [];
    const suggestions = this.boxes.filter((b) => b.pending);
    const labels = this.boxes.filter((b) => !b.pending);
    for (const b of suggestions.concat(labels)) {
      const li = document.createElement("li");
      li.dataset.key = String(b.key);
      li.dataset.classId = String(b.cls);
      li.className = b.pending ? "ann-box pending" : "ann-box";
      const swatch = document.createElement("span");
      swatch.className = "swatch small";
      swatch.style.background = this.colour(b.cls);
      const name = document.createElement("span");
      name.className = "ann-box-name";
      name.textContent = this.className(b.cls);
      li.append(swatch, name);
      if (b.pending) {
        const tag = document.createElement("span");
        tag.className = "ann-box-tag";
        tag.textContent = b.confidence === null ? "suggested" : `suggested ${b.confidence.toFixed(2)}`;
        li.append(tag);
      }
      li.setAttribute("aria-selected", this.selection.has(b.key) ? "true" : "false");
      items.push(li);
    }
    list.replaceChildren(...items);
    const count = $("ann-box-count");
    count.textContent = labels.length + (suggestions.length ? ` + ${suggestions.length} suggested` : "");
  }

  refreshListSelection() {
    let first = null;
    for (const li of $("ann-boxes").children) {
      const on = this.selection.has(Number(li.dataset.key));
      li.setAttribute("aria-selected", on ? "true" : "false");
      if (on && !first) first = li;
    }
    if (first && this.selection.size === 1) first.scrollIntoView({ block: "nearest" });
  }

  refreshPanels() {
    const pending = this.boxes.filter((b) => b.pending).length;
    const labels = this.boxes.length - pending;
    $("ann-review").hidden = pending === 0;
    const button = $("ann-no-objects");
    button.setAttribute("aria-pressed", this.noObjects ? "true" : "false");
    let what = `${labels} box${labels === 1 ? "" : "es"}`;
    if (this.noObjects) what = "no objects";
    else if (!labels) what = "unlabelled";
    if (pending) what += ` · ${pending} suggestion${pending === 1 ? "" : "s"} to review`;
    $("ann-counts").textContent = `${this.W} × ${this.H} px · ${this.data.split} · ${what}`;
    this.root.dataset.boxes = String(labels);
    this.root.dataset.suggestions = String(pending);
    this.root.dataset.noObjects = String(this.noObjects);
  }

  refreshCurrent() {
    const c = this.classes[this.current];
    $("ann-current-swatch").style.background = c ? c.colour : "transparent";
    $("ann-current-name").textContent = c ? c.name : "no classes";
    for (const li of $("ann-classes")?.children || []) {
      li.classList.toggle("current", Number(li.dataset.position) === this.current);
    }
  }

  renderHelp() {
    const body = $("ann-help-body");
    const groups = new Map();
    // The ten class keys in one row while they are the digits (as they start).
    const classRows = this.keymap.filter((r) => /^class\d+$/.test(r.action));
    const digits = classRows.length === 10 &&
      classRows.every((r) => r.keys.length === 1 && r.keys[0] === String(Number(r.action.slice(5)) % 10));
    const rows = digits
      ? this.keymap.filter((r) => !classRows.includes(r)).concat(
        [{ group: "Boxes", keys: classRows.map((r) => r.keys[0]), label: "1 … 9, 0", help: "Current class 1 to 10; also changes the selected boxes" }])
      : this.keymap;
    for (const row of rows) {
      if (!groups.has(row.group)) groups.set(row.group, []);
      groups.get(row.group).push(row);
    }
    const sections = [];
    const table = (title, rows) => {
      const section = document.createElement("section");
      section.className = `ann-help-${title.toLowerCase()}`;
      const h = document.createElement("h3");
      h.textContent = title;
      const dl = document.createElement("dl");
      for (const [keys, help] of rows) {
        const dt = document.createElement("dt");
        if (typeof keys === "string") dt.textContent = keys;
        else keys.forEach((k, i) => {
          if (i) dt.append(" ");
          const kbd = document.createElement("kbd");
          kbd.textContent = k;
          dt.append(kbd);
        });
        const dd = document.createElement("dd");
        dd.textContent = help;
        dl.append(dt, dd);
      }
      section.append(h, dl);
      sections.push(section);
    };
    for (const [group, rows] of groups) {
      table(group, rows.map((r) => [
        r.label && digits && r.action === undefined ? [r.label] : r.keys.length ? r.keys.map(keyLabel) : "no key",
        r.help,
      ]));
    }
    table("Mouse", MOUSE.map(([what, help]) => [what, help]));
    body.replaceChildren(...sections);
  }

  // ---- start ----

  start() {
    const on = (el, type, fn, opts) => el && el.addEventListener(type, fn.bind(this), opts);
    this.image.hidden = true;
    this.canvas.hidden = false;
    on(document, "keydown", this.onKey);
    on(document, "keyup", this.onKeyUp);
    on(window, "blur", () => { this.spaceDown = false; this.root.classList.remove("panning"); });
    on(this.canvas, "pointerdown", this.onPointerDown);
    on(this.canvas, "pointermove", this.onPointerMove);
    on(this.canvas, "pointerup", this.onPointerUp);
    on(this.canvas, "pointercancel", this.onPointerUp);
    on(this.canvas, "pointerleave", () => { this.hover = null; if (this.drawMode) this.requestDraw(); });
    on(this.canvas, "wheel", this.onWheel, { passive: false });
    on(this.canvas, "contextmenu", (e) => e.preventDefault());
    on(this.canvas, "auxclick", (e) => e.preventDefault());
    on($("ann-zoom"), "click", () => this.fit());
    on($("ann-help-button"), "click", () => this.help());
    on($("ann-help-close"), "click", () => $("ann-help").close());
    on($("ann-help"), "click", (e) => { if (e.target === $("ann-help")) $("ann-help").close(); });
    on($("ann-no-objects"), "click", () => { this.toggleNoObjects(); this.canvas.focus(); });
    on($("ann-accept-all"), "click", () => { this.acceptAll(); this.canvas.focus(); });
    on($("ann-reject-all"), "click", () => { this.rejectAll(); this.canvas.focus(); });
    on($("ann-retry"), "click", () => { this.hideAlert(); this.save(); });
    on($("ann-reload"), "click", () => {
      this.toClipboard(this.boxes.filter((b) => !b.pending));
      window.location.reload();
    });
    for (const which of ["previous", "next"]) {
      on($(`ann-${which}`), "click", (e) => {
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return; // a new tab: no save
        e.preventDefault();
        this.go(which);
      });
    }
    on($("ann-boxes"), "click", (e) => {
      const li = e.target instanceof Element && e.target.closest("li[data-key]");
      if (!li) return;
      const key = Number(li.dataset.key);
      if (e.shiftKey) {
        if (this.selection.has(key)) this.selection.delete(key); else this.selection.add(key);
        this.selectionChanged();
      } else this.selectOnly([key]);
      this.reveal(this.byKey(key));
    });
    on($("ann-classes"), "click", (e) => {
      const button = e.target instanceof Element && e.target.closest("button[data-position]");
      if (!button) return;
      this.pickClass(Number(button.dataset.position));
      this.canvas.focus();
    });
    const search = $("ann-class-search");
    on(search, "input", this.filterClasses);
    on(search, "keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.pickSearched();
      } else if (e.key === "Escape") {
        e.preventDefault();
        search.value = "";
        this.filterClasses();
        this.canvas.focus();
      }
    });
    on(window, "pagehide", () => {
      this.saveOnLeave();
      if (!this.leaving) {
        storage("session")?.setItem(CAME_FROM_KEY, JSON.stringify({
          project: this.data.project, filename: this.data.filename, labels_url: this.data.labels_url,
        }));
      }
    });
    const ready = () => {
      this.imageReady = this.image.naturalWidth > 0;
      if (!this.imageReady) this.canvas.dataset.image = "failed";
      this.requestDraw();
    };
    if (this.image.complete) ready();
    else {
      on(this.image, "load", ready);
      on(this.image, "error", () => {
        this.canvas.dataset.image = "failed";
        this.say("The image file could not be loaded.");
      });
    }
    on(window, "resize", this.placeStage);
    this.placeStage();
    new ResizeObserver(() => this.resize()).observe(this.stage);
    this.resize();
    this.renderList();
    this.refreshPanels();
    this.refreshCurrent();
    this.renderHelp();
    this.updateStatus();
    this.canvas.focus({ preventScroll: true });
    this.root.dataset.ready = "true";
    performance.mark("annotator-ready");
  }
}

function boot() {
  const root = $("annotator");
  if (!root || root.dataset.ready) return;
  const data = JSON.parse($("annotator-data").textContent);
  const annotator = new Annotator(root, data);
  annotator.start();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
document.addEventListener("htmx:afterSettle", boot);
