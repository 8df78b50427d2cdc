(function () {
  "use strict";
  var table = document.getElementById("studies");
  if (!table || !table.tHead || !table.tBodies.length) {
    return;
  }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;

  function sortKey(row, col) {
    var cell = row.cells[col];
    var key = cell.getAttribute("data-sort");
    return key === null ? cell.textContent.trim() : key;
  }

  function compare(a, b) {
    var x = Number(a);
    var y = Number(b);
    if (a !== "" && b !== "" && isFinite(x) && isFinite(y)) {
      return x - y;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function sortBy(col) {
    var head = heads[col];
    var ascending = head.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var order = compare(sortKey(r1, col), sortKey(r2, col));
      if (!ascending) {
        order = -order;
      }
      if (order === 0) {
        order = compare(r1.getAttribute("data-key"), r2.getAttribute("data-key"));
      }
      return order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
    for (var i = 0; i < heads.length; i += 1) {
      heads[i].removeAttribute("aria-sort");
    }
    head.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  Array.prototype.forEach.call(heads, function (head, col) {
    var button = head.querySelector("button.sort");
    if (button) {
      button.addEventListener("click", function () {
        sortBy(col);
      });
    }
  });
})();
