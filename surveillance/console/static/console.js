// The console's own script: sortable tables, timeline marks that find their evidence row, and
// checked inbox rows kept across the live refresh. No third-party code here (htmx is served
// from its package).
(function () {
  "use strict";
  function cellValue(row, i, type) {
    var cell = row.children[i];
    var raw = cell ? (cell.getAttribute("data-v") || cell.textContent.trim()) : "";
    if (type === "num") { var x = parseFloat(raw); return isNaN(x) ? -Infinity : x; }
    return raw.toLowerCase();
  }
  function makeSortable(table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, i) {
      th.addEventListener("click", function () {
        var type = th.getAttribute("data-type") || "text";
        var asc = th.getAttribute("data-dir") !== "asc";
        heads.forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, i, type), y = cellValue(b, i, type);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  function init() {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    document.querySelectorAll("svg.timeline [data-row]").forEach(function (mark) {
      mark.addEventListener("click", function () {
        var row = document.getElementById(mark.getAttribute("data-row"));
        if (!row) { return; }
        row.scrollIntoView({ block: "center" });
        row.classList.add("flash");
        setTimeout(function () { row.classList.remove("flash"); }, 1500);
      });
    });
    var csrf = document.body.getAttribute("data-csrf");
    var checked = [];
    document.body.addEventListener("htmx:configRequest", function (e) {
      if (csrf) { e.detail.headers["X-CSRF-Token"] = csrf; }
    });
    document.body.addEventListener("htmx:beforeSwap", function () {
      checked = Array.prototype.map.call(
        document.querySelectorAll("#inbox-rows input[name=id]:checked"),
        function (box) { return box.value; });
    });
    document.body.addEventListener("htmx:afterSettle", function () {
      checked.forEach(function (id) {
        var box = document.querySelector("#inbox-rows input[name=id][value='" + id + "']");
        if (box) { box.checked = true; }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else { init(); }
})();
