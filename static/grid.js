// The image grid (templates/images/_results.html, _tiles.html).
// - Shift-click on a tile's checkbox selects (or clears) every tile between it and the last one
//   clicked; "Select all shown" takes every loaded tile. The bar counts the selection and the
//   bulk buttons wait for one.
// - Filters at "any" are left out of the request (and so of the pushed URL).
// - A tile whose thumbnail is missing asks the API to make it again (once).
(function () {
  "use strict";

  var lastClicked = null;

  function boxes(form) {
    return Array.prototype.slice.call(form.querySelectorAll("input[name=filenames]"));
  }

  function refresh(form) {
    var all = boxes(form);
    var chosen = all.filter(function (box) { return box.checked; }).length;
    var count = form.querySelector("[data-selected-count]");
    if (count) count.textContent = String(chosen);
    form.querySelectorAll("[data-needs-selection]").forEach(function (button) {
      button.disabled = chosen === 0;
    });
    var selectAll = form.querySelector("[data-select-all]");
    if (selectAll) {
      selectAll.checked = chosen > 0 && chosen === all.length;
      selectAll.indeterminate = chosen > 0 && chosen < all.length;
    }
    form.classList.toggle("has-selection", chosen > 0);
    all.forEach(function (box) {
      var tile = box.closest(".tile");
      if (tile) tile.classList.toggle("selected", box.checked);
    });
  }

  document.addEventListener("click", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement)) return;
    var form = box.closest("form[data-grid]");
    if (!form) return;
    if (box.matches("[data-select-all]")) {
      boxes(form).forEach(function (each) { each.checked = box.checked; });
      lastClicked = null;
    } else if (box.name === "filenames") {
      var all = boxes(form);
      if (event.shiftKey && lastClicked && all.indexOf(lastClicked) !== -1) {
        var from = all.indexOf(lastClicked);
        var to = all.indexOf(box);
        var lo = Math.min(from, to);
        var hi = Math.max(from, to);
        for (var i = lo; i <= hi; i++) all[i].checked = box.checked;
      }
      lastClicked = box;
    } else {
      return;
    }
    refresh(form);
  });

  function refreshAll() {
    document.querySelectorAll("form[data-grid]").forEach(refresh);
  }

  // New tiles (the next page) or new results (a filter, a move): count again.
  document.addEventListener("htmx:afterSettle", refreshAll);
  document.addEventListener("DOMContentLoaded", refreshAll);

  // A filter left at "any" stays out of the URL (?split=val, not ?split=val&state=&q=).
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.verb !== "get" || !event.detail.elt.closest("#filters")) return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (key) {
      if (params[key] === "") delete params[key];
    });
  });

  // Error events do not bubble: listen while they go down (capture).
  document.addEventListener("error", function (event) {
    var img = event.target;
    if (!(img instanceof HTMLImageElement) || !img.dataset.fallback) return;
    var fallback = img.dataset.fallback;
    delete img.dataset.fallback;
    img.src = fallback;
  }, true);
})();
