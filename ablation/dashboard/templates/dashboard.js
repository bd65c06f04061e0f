// The study dashboard's script (inlined). Optional comfort only: every chart and number is in
// the HTML already. Hover or focus a variant (legend, line, point, row) to highlight it in every
// chart; click a trials-table header to sort; tick statuses to filter the trials table.
(function () {
  "use strict";

  var marked = Array.prototype.slice.call(document.querySelectorAll("[data-variant]"));

  function highlight(name) {
    marked.forEach(function (el) {
      var mine = el.getAttribute("data-variant") === name;
      el.classList.toggle("dimmed", name !== null && !mine);
      if (el.tagName === "LI") el.classList.toggle("active", name !== null && mine);
    });
  }

  marked.forEach(function (el) {
    var name = el.getAttribute("data-variant");
    el.addEventListener("mouseenter", function () { highlight(name); });
    el.addEventListener("mouseleave", function () { highlight(null); });
    el.addEventListener("focus", function () { highlight(name); });
    el.addEventListener("blur", function () { highlight(null); });
  });

  // Sorting: numbers numerically (leading number of the cell), text alphabetically.
  function cellKey(row, i) {
    var text = row.cells[i].textContent.trim();
    var n = parseFloat(text.replace(/[^0-9eE+\-.]/g, ""));
    return /^[+\-]?[0-9.]/.test(text) && !isNaN(n) ? n : text.toLowerCase();
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, i) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellKey(a, i), y = cellKey(b, i);
          if (typeof x !== typeof y) { x = String(x); y = String(y); }
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-status]"));
  function filter() {
    var shown = {};
    boxes.forEach(function (b) { shown[b.getAttribute("data-status")] = b.checked; });
    Array.prototype.forEach.call(document.querySelectorAll("table.trials tbody tr"), function (r) {
      var s = r.getAttribute("data-status");
      r.classList.toggle("hidden", s in shown && !shown[s]);
    });
  }
  boxes.forEach(function (b) { b.addEventListener("change", filter); });

  document.documentElement.setAttribute("data-dashboard-ready", "1");
})();
