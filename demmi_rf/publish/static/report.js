// DeMMI-RF report: sortable tables and the comparison viewer. Plain JavaScript, no library, no network.
"use strict";

(function () {
  // ---- sortable tables: <table class="sortable">, a <button> per header, numbers in td[data-value] ----
  function cellKey(row, col) {
    const cell = row.cells[col];
    const raw = cell.getAttribute("data-value");
    if (raw === null) { return { num: false, text: cell.textContent.trim() }; }
    const v = parseFloat(raw);
    return { num: true, value: Number.isFinite(v) ? v : null };
  }

  function sortTable(table, col, direction) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const ka = cellKey(a, col), kb = cellKey(b, col);
      if (ka.num || kb.num) {
        if (ka.value === null && kb.value === null) { return 0; }
        if (ka.value === null) { return 1; }  // NaN last, whatever the direction
        if (kb.value === null) { return -1; }
        return direction === "ascending" ? ka.value - kb.value : kb.value - ka.value;
      }
      const c = ka.text.localeCompare(kb.text);
      return direction === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.from(table.tHead.rows[0].cells).forEach(function (th, i) {
      if (i === col) { th.setAttribute("aria-sort", direction); } else { th.removeAttribute("aria-sort"); }
    });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (th, col) {
      const button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        const current = th.getAttribute("aria-sort");
        // first click: best first (data-better = "higher" sorts descending)
        let next = th.getAttribute("data-better") === "lower" ? "ascending" : "descending";
        if (current) { next = current === "ascending" ? "descending" : "ascending"; }
        sortTable(table, col, next);
      });
    });
  });

  // ---- comparison viewer ----
  const panels = Array.from(document.querySelectorAll("section.sample"));
  if (panels.length === 0) { return; }
  const picker = document.getElementById("sample-picker");
  const zoomSelect = document.getElementById("zoom");
  const status = document.getElementById("sample-status");
  let current = 0;
  let zoom = 1;
  let focus = { x: 0.5, y: 0.5 };

  function applyView() {
    const panel = panels[current];
    panel.querySelectorAll("figure").forEach(function (fig) {
      const view = fig.querySelector(".view");
      const img = fig.querySelector("img");
      if (!view || !img) { return; }
      if (zoom > 1 && img.dataset.full && img.getAttribute("src") !== img.dataset.full) {
        img.setAttribute("src", img.dataset.full);
      }
      img.style.width = (zoom * 100) + "%";
      fig.classList.toggle("zoomed", zoom > 1);
      const apply = function () {
        view.scrollLeft = Math.max(0, focus.x * view.scrollWidth - view.clientWidth / 2);
        view.scrollTop = Math.max(0, focus.y * view.scrollHeight - view.clientHeight / 2);
      };
      if (img.complete) { apply(); } else { img.addEventListener("load", apply, { once: true }); }
    });
  }

  function show(index) {
    current = (index + panels.length) % panels.length;
    panels.forEach(function (p, i) { p.hidden = i !== current; });
    if (picker) { picker.value = String(current); }
    if (status) { status.textContent = (current + 1) + " / " + panels.length; }
    if (window.location.hash !== "#" + panels[current].id) {
      try { history.replaceState(null, "", "#" + panels[current].id); }
      catch (err) { /* some browsers refuse history on file:// pages: the hash is a convenience only */ }
    }
    applyView();
  }

  function setZoom(z) {
    const allowed = [1, 2, 4, 8];
    zoom = allowed.indexOf(z) >= 0 ? z : 1;
    if (zoomSelect) { zoomSelect.value = String(zoom); }
    applyView();
  }

  panels.forEach(function (panel) {
    panel.querySelectorAll("figure .view").forEach(function (view) {
      view.addEventListener("click", function (event) {
        const rect = view.getBoundingClientRect();
        focus = {
          x: (view.scrollLeft + event.clientX - rect.left) / view.scrollWidth,
          y: (view.scrollTop + event.clientY - rect.top) / view.scrollHeight,
        };
        if (zoom === 1) { setZoom(4); } else { applyView(); }
      });
    });
  });
  if (picker) { picker.addEventListener("change", function () { show(parseInt(picker.value, 10)); }); }
  if (zoomSelect) { zoomSelect.addEventListener("change", function () { setZoom(parseInt(zoomSelect.value, 10)); }); }
  const prev = document.getElementById("prev"), next = document.getElementById("next");
  if (prev) { prev.addEventListener("click", function () { show(current - 1); }); }
  if (next) { next.addEventListener("click", function () { show(current + 1); }); }
  document.addEventListener("keydown", function (event) {
    if (event.target && (event.target.tagName === "SELECT" || event.target.tagName === "INPUT")) { return; }
    if (event.key === "ArrowRight" || event.key === "j") { show(current + 1); event.preventDefault(); }
    else if (event.key === "ArrowLeft" || event.key === "k") { show(current - 1); event.preventDefault(); }
    else if (event.key === "+" || event.key === "=") { setZoom(Math.min(8, zoom * 2)); }
    else if (event.key === "-") { setZoom(Math.max(1, zoom / 2)); }
    else if (event.key === "0") { focus = { x: 0.5, y: 0.5 }; setZoom(1); }
  });
  const start = panels.findIndex(function (p) { return "#" + p.id === window.location.hash; });
  show(start >= 0 ? start : 0);
})();
