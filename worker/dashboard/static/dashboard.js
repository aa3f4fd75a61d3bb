/* The routeq dashboard: fetches api/data every few seconds and draws it with uPlot.
   Each chart, gauge list and table records what it drew in its data-drawn attribute (series
   sums, point and row counts), so a test can read the page's DOM and compare with the data. */
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var HEIGHT = 220;
  var PALETTE = ["#3b6fd8", "#e07b39", "#2e9e5b", "#a05bd6", "#d64545", "#1fa3a3", "#c9a227", "#7a8599"];
  var STATUS_COLORS = { succeeded: "#2e9e5b", failed: "#d64545", rejected: "#e0a030" };
  var token = new URLSearchParams(window.location.search).get("token");
  var charts = {};
  var html = document.documentElement;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function sum(values) {
    var total = 0;
    for (var i = 0; i < values.length; i++) { total += values[i] || 0; }
    return total;
  }

  function drawnBy(u) {
    var series = {};
    for (var i = 1; i < u.series.length; i++) {
      var values = u.data[i] || [];
      series[u.series[i].label] = {
        sum: Math.round(sum(values) * 1e9) / 1e9,
        points: values.filter(function (v) { return v !== null && v !== undefined; }).length,
      };
    }
    return { points: u.data[0].length, series: series };
  }

  /* One uPlot per chart, rebuilt when its series change, else given the new data. */
  function lineChart(id, t, named, opts) {
    var box = document.getElementById(id);
    var names = Object.keys(named);
    var key = names.join("\u0000");
    var data = [t].concat(names.map(function (n) { return named[n]; }));
    var current = charts[id];
    if (current && current.key === key) {
      current.plot.setData(data);
      return;
    }
    if (current) { current.plot.destroy(); }
    var series = [{}].concat(names.map(function (n, i) {
      var color = (opts.colors && opts.colors[n]) || PALETTE[i % PALETTE.length];
      return { label: n, stroke: color, width: 2, fill: opts.fill ? color + "22" : undefined,
               points: { show: !!opts.points }, value: opts.value };
    }));
    var plot = new uPlot({
      width: Math.max(300, box.clientWidth || 600),
      height: HEIGHT,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1e-9, max || 1) * 1.1]; } } },
      axes: [{}, { size: 72, values: opts.axis }],
      legend: { live: true },
      hooks: { draw: [function (u) { box.setAttribute("data-drawn", JSON.stringify(drawnBy(u))); }] },
    }, data, box);
    charts[id] = { key: key, plot: plot };
  }

  function fmtUsd(v) {
    if (v === null || v === undefined) { return "-"; }
    var n = Number(v);
    return "$" + (n === 0 ? "0" : n < 0.01 ? String(+n.toPrecision(2)) : n.toFixed(n < 1 ? 4 : 2));
  }
  function fmtCount(v) { return v === null || v === undefined ? "-" : String(Math.round(v * 10) / 10); }
  function fmtAge(s) {
    if (s === null || s === undefined) { return "-"; }
    if (s < 60) { return s.toFixed(1) + "s"; }
    if (s < 3600) { return Math.round(s / 60) + "m"; }
    return (s / 3600).toFixed(1) + "h";
  }

  function table(id, headers, rows, numeric, rowClass) {
    var t = document.getElementById(id);
    t.textContent = "";
    if (!rows.length) {
      t.appendChild(el("caption", { class: "empty" }, "none"));
    } else {
      var head = el("tr");
      headers.forEach(function (h, i) { head.appendChild(el("th", numeric[i] ? { class: "num" } : {}, h)); });
      t.appendChild(head);
      rows.forEach(function (row, r) {
        var tr = el("tr", rowClass ? { class: rowClass(r) } : {});
        row.forEach(function (cell, i) { tr.appendChild(el("td", numeric[i] ? { class: "num" } : {}, cell)); });
        t.appendChild(tr);
      });
    }
    t.setAttribute("data-drawn", JSON.stringify({ rows: rows.length }));
  }

  function budgets(lines) {
    var box = document.getElementById("budgets");
    box.textContent = "";
    if (!lines.length) { box.appendChild(el("div", { class: "empty" }, "no budget counters yet")); }
    var drawn = {};
    lines.forEach(function (b) {
      var pct = Math.min(100, b.used_pct);
      var g = el("div", { class: "gauge" });
      var label = el("div", { class: "label" });
      label.appendChild(el("span", {}, b.name + " · " + b.scope + " · " + b.window));
      label.appendChild(el("span", {}, fmtUsd(b.spent_usd) + " of " + fmtUsd(b.limit_usd) + " (" + b.used_pct + "%)"));
      var bar = el("div", { class: "bar" });
      var fill = el("div", { class: "fill" + (pct >= 90 ? " bad" : pct >= 70 ? " warn" : "") });
      fill.style.width = pct + "%";
      bar.appendChild(fill);
      g.appendChild(label);
      g.appendChild(bar);
      box.appendChild(g);
      drawn[b.name + "|" + b.scope + "|" + b.window] = { spent_usd: b.spent_usd, limit_usd: b.limit_usd };
    });
    box.setAttribute("data-drawn", JSON.stringify({ lines: lines.length, budgets: drawn }));
  }

  function totals(doc) {
    var box = document.getElementById("totals");
    box.textContent = "";
    var t = doc.totals || {};
    var live = doc.workers.filter(function (w) { return w.state === "live"; }).length;
    var items = [
      [String(t.jobs || 0), "jobs, last 24 h"],
      [t.jobs ? Math.round(100 * t.succeeded / t.jobs) + "%" : "-", "succeeded"],
      [fmtUsd(t.spend_usd), "spent, last 24 h"],
      [t.p95_ms === null || t.p95_ms === undefined ? "-" : "≤ " + t.p95_ms + " ms", "p95 latency"],
      [String(t.fallbacks || 0), "served by a fallback"],
      [live + " / " + doc.workers.length, "workers live"],
    ];
    items.forEach(function (it) {
      var d = el("div", { class: "total" });
      d.appendChild(el("b", {}, it[0]));
      d.appendChild(el("span", {}, it[1]));
      box.appendChild(d);
    });
  }

  function render(doc) {
    var m = doc.minutes;
    lineChart("chart-jobs", m.t, m.series, { colors: STATUS_COLORS, value: function (u, v) { return fmtCount(v); } });
    document.getElementById("jobs-note").textContent =
      m.estimated.length ? "· " + m.estimated.length + " busy minute(s) estimated" : "";
    var h = doc.hours;
    lineChart("chart-spend", h.t, h.spend_usd_by_model, {
      fill: true, axis: function (u, ticks) { return ticks.map(function (v) { return "$" + +v.toPrecision(3); }); },
      value: function (u, v) { return fmtUsd(v); },
    });
    lineChart("chart-rules", h.t, h.jobs_by_rule, { value: function (u, v) { return fmtCount(v); } });
    lineChart("chart-latency", h.t, h.latency_ms, { colors: { p50: "#3b6fd8", p95: "#d64545" }, points: true,
      value: function (u, v) { return v === null ? "-" : v + " ms"; } });
    budgets(doc.budgets);
    table("experiments", ["experiment", "variant", "jobs", "units", "success", "cost/job", "p95 ms", "quality"],
      doc.experiments.map(function (a) {
        return [a.experiment, a.variant, a.jobs, a.units,
                a.success_rate === null ? "-" : (100 * a.success_rate).toFixed(1) + "%",
                fmtUsd(a.cost_per_job_usd), a.p95_ms === null ? "-" : a.p95_ms,
                a.quality === null ? "-" : a.quality.toFixed(3) + " (n=" + a.quality_n + ")"];
      }), [false, false, true, true, true, true, true, true]);
    table("workers", ["worker", "state", "host", "pid", "queues", "slots", "jobs/s", "rules", "uptime", "last error"],
      doc.workers.map(function (w) {
        if (w.state === "lost") { return [w.name, "lost (silent " + fmtAge(w.silent_s) + ")", "", "", "", "", "", "", "", ""]; }
        var rules = w.rules_number !== null && w.rules_number !== undefined ? "v" + w.rules_number
          : String(w.rules_version || "-").replace("sha256:", "").slice(0, 12);
        return [w.name, "live", w.host, w.pid, (w.queues || []).join(","), w.slots_used + "/" + w.slots,
                w.jobs_per_s, rules, fmtAge(w.uptime_s), w.last_error || "-"];
      }), [false, false, false, true, false, true, true, false, true, false],
      function (r) { return doc.workers[r].state === "lost" ? "lost" : ""; });
    table("queues", ["queue", "depth", "ready", "running", "oldest ready"],
      doc.queues.map(function (q) { return [q.name, q.depth, q.ready, q.running, fmtAge(q.oldest_ready_age_s)]; }),
      [false, true, true, true, true]);
    totals(doc);
    document.getElementById("meta").textContent =
      "prefix " + doc.prefix + " · updated " + new Date(doc.at_ms).toISOString().slice(11, 19) + " UTC";
  }

  function status(text, ok) {
    var s = document.getElementById("status");
    s.textContent = text;
    s.className = "status " + (ok ? "ok" : "bad");
  }

  function refresh() {
    var headers = token ? { Authorization: "Bearer " + token } : {};
    return fetch("api/data", { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("api/data answered HTTP " + r.status); }
        return r.json();
      })
      .then(function (doc) {
        render(doc);
        status("live", true);
        html.setAttribute("data-state", "ready");
        html.setAttribute("data-refreshed", String(doc.at_ms));
      })
      .catch(function (err) {
        status("cannot refresh: " + err.message, false);
        window.routeqNoteError("refresh failed: " + err.message);
      });
  }

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (id) {
      var box = document.getElementById(id);
      charts[id].plot.setSize({ width: Math.max(300, box.clientWidth), height: HEIGHT });
    });
  });
  refresh().then(function () { window.setInterval(refresh, REFRESH_MS); });
})();
