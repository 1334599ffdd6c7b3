// The overview's script: connectors, routes and held messages every 3 s from
// {prefix}/api/overview, with the recent warnings the processes reported; throughput
// and error rate every 10 s (and when the period or route changes) from
// {prefix}/api/overview/throughput. Values go into the page as text, never as HTML.
// Uses the helpers console.js puts on window.bdchubConsole.
(function () {
  "use strict";

  function overview(hub) {
    var section = document.getElementById("overview");
    if (!section) return;
    var labels = JSON.parse(section.getAttribute("data-labels"));
    var cell = hub.cell;
    var chart = null;
    var flow = null;
    var period = document.getElementById("throughput-window");
    var route = document.getElementById("throughput-route");

    function fill(id, rows, each) {
      var body = document.querySelector("#" + id + " tbody");
      body.textContent = "";
      rows.forEach(function (r) {
        var row = document.createElement("tr");
        each(row, r);
        body.appendChild(row);
      });
      return body;
    }
    function connectors(doc) {
      fill("connectors", doc.connectors, function (row, c) {
        row.setAttribute("data-connector", c.name);
        row.setAttribute("data-health", c.health || "unknown");
        row.setAttribute("data-breaker", c.breaker || "unknown");
        cell(row, c.name);
        cell(row, c.type);
        cell(row, labels[c.health || "unknown"], "health health-" + (c.health || "unknown"));
        cell(row, labels[c.breaker || "unknown"] || c.breaker, "breaker");
        cell(row, c.latency_ms);
        cell(row, c.calls_1m + " / " + c.errors_1m);
      });
    }
    function routes(doc) {
      fill("routes", doc.routes, function (row, r) {
        row.setAttribute("data-route", r.name);
        [r.name, r.depth, r.in_flight, r.parked, r.waiting, r.dead_letters].forEach(
          function (v) { cell(row, v); });
      });
    }
    function two(n) { return ("0" + n).slice(-2); }
    function stamp(at) {  // as the server's pages write a time (frame.when)
      var d = new Date(at * 1000);
      return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " "
        + two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
    }
    function warnings(doc) {
      var found = doc.warnings || [];
      var body = fill("warnings", found, function (row, w) {
        row.setAttribute("data-event", w.event || "");
        row.className = "level-" + String(w.level || "").toLowerCase();
        cell(row, stamp(w.at));
        cell(row, (w.host || "") + ":" + (w.pid || ""));
        cell(row, w.level);
        cell(row, w.message, "warning-message");
      });
      if (!found.length) {
        var none = document.createElement("tr");
        none.id = "no-warnings";
        cell(none, labels.no_warnings).colSpan = 4;
        body.appendChild(none);
      }
      section.setAttribute("data-warnings", String(found.length));
    }
    // Who runs each singleton (pollers, reconciler …) under its lease (app.singletons).
    function singletons(doc) {
      var found = doc.singletons || [];
      var body = fill("singletons", found, function (row, s) {
        row.setAttribute("data-singleton", s.name);
        row.setAttribute("data-held", s.held ? "yes" : "no");
        cell(row, s.name);
        cell(row, (s.host || "") + ":" + (s.pid || ""));
        cell(row, stamp(s.taken_at));
        cell(row, s.held ? s.expires_in : labels.expired);
      });
      if (!found.length) {
        var none = document.createElement("tr");
        none.id = "no-singletons";
        cell(none, labels.no_singletons).colSpan = 4;
        body.appendChild(none);
      }
    }
    function held(doc) {
      if (!window.echarts) return;
      var shown = doc.routes.filter(function (r) { return r.parked || r.waiting || r.dead_letters; });
      if (!shown.length) shown = doc.routes;
      chart = chart || window.echarts.init(document.getElementById("held-chart"));
      chart.setOption({
        animation: false, tooltip: { trigger: "axis" },
        legend: { top: 0, data: [labels.parked, labels.waiting, labels.dead_letters] },
        grid: { left: 40, right: 20, top: 40, bottom: 90 },
        xAxis: { type: "category", data: shown.map(function (r) { return r.name; }),
                 axisLabel: { rotate: 40, interval: 0 } },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { name: labels.parked, type: "bar", stack: "held", data: shown.map(function (r) { return r.parked; }) },
          { name: labels.waiting, type: "bar", stack: "held", data: shown.map(function (r) { return r.waiting; }) },
          { name: labels.dead_letters, type: "bar", stack: "held", data: shown.map(function (r) { return r.dead_letters; }) }
        ]
      });
      section.setAttribute("data-chart", "rendered");
    }
    function render(doc) {
      connectors(doc);
      routes(doc);
      warnings(doc);
      singletons(doc);
      document.getElementById("updated").textContent = new Date(doc.at * 1000).toLocaleTimeString();
      document.getElementById("refresh-error").textContent = doc.running ? "" : labels.stale;
      held(doc);
      section.setAttribute("data-refreshed", String(doc.at));
    }
    function refresh() {
      hub.api("GET", "/api/overview").then(function (answer) {
        if (answer.status === 200) render(answer.doc);
        else if (answer.status === 401) window.location.assign(hub.prefix + "/login");
        else document.getElementById("refresh-error").textContent = labels.failed + ": " + hub.errorText(answer);
      }).catch(function () {
        document.getElementById("refresh-error").textContent = labels.failed;
      });
    }

    function slotLabel(at) {
      var d = new Date(at * 1000);
      return two(d.getHours()) + ":" + two(d.getMinutes());
    }
    function drawThroughput(doc) {
      document.getElementById("throughput-handled").textContent = String(doc.handled);
      document.getElementById("throughput-failed").textContent = String(doc.failed);
      document.getElementById("throughput-error").textContent = "";
      var box = document.getElementById("throughput-chart");
      box.setAttribute("data-points", String(doc.points.filter(function (p) { return p.handled; }).length));
      box.setAttribute("data-handled", String(doc.handled));
      box.setAttribute("data-failed", String(doc.failed));
      box.setAttribute("data-window", doc.window);
      box.setAttribute("data-route", doc.route || "");
      if (!window.echarts) return;
      flow = flow || window.echarts.init(box);
      flow.setOption({
        animation: false, tooltip: { trigger: "axis" },
        legend: { top: 0, data: [labels.succeeded, labels.failures, labels.error_rate] },
        grid: { left: 50, right: 50, top: 40, bottom: 30 },
        xAxis: { type: "category", data: doc.points.map(function (p) { return slotLabel(p.at); }) },
        yAxis: [{ type: "value", minInterval: 1 },
                { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } }],
        series: [
          { name: labels.succeeded, type: "bar", stack: "handled", color: "#3b7dd8",
            data: doc.points.map(function (p) { return p.handled - p.failed; }) },
          { name: labels.failures, type: "bar", stack: "handled", color: "#d0453a",
            data: doc.points.map(function (p) { return p.failed; }) },
          { name: labels.error_rate, type: "line", yAxisIndex: 1, color: "#e08a1e", connectNulls: false,
            data: doc.points.map(function (p) {
              return p.handled ? Math.round(p.failed / p.handled * 1000) / 10 : null;
            }) }
        ]
      }, true);
      box.setAttribute("data-chart", "rendered");
    }
    function throughput() {
      var query = "?window=" + encodeURIComponent(period.value)
        + "&route=" + encodeURIComponent(route.value);
      hub.api("GET", "/api/overview/throughput" + query).then(function (answer) {
        if (answer.status === 200) drawThroughput(answer.doc);
        else if (answer.status === 401) window.location.assign(hub.prefix + "/login");
        else document.getElementById("throughput-error").textContent = labels.failed + ": " + hub.errorText(answer);
      }).catch(function () {
        document.getElementById("throughput-error").textContent = labels.failed;
      });
    }

    period.addEventListener("change", throughput);
    route.addEventListener("change", throughput);
    refresh();
    throughput();
    window.setInterval(refresh, 3000);
    window.setInterval(throughput, 10000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.bdchubConsole) overview(window.bdchubConsole);
  });
})();
