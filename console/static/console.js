// The console's one script: login, logout, the overview's refresh and chart, the
// statistics' tables and chart, and the dead-letter actions. Values go into the page as
// text (textContent), never as HTML.
(function () {
  "use strict";
  var meta = function (name) {
    var found = document.querySelector('meta[name="' + name + '"]');
    return found ? found.getAttribute("content") : "";
  };
  var prefix = meta("console-prefix");
  var lang = document.documentElement.lang === "en" ? "en" : "zh_CN";

  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = meta("csrf-token");
    return fetch(prefix + path + "?lang=" + lang, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (doc) {
        return { status: resp.status, doc: doc };
      });
    });
  }
  function errorText(answer) {
    return (answer.doc && answer.doc.error && answer.doc.error.message) || ("HTTP " + answer.status);
  }

  function login() {
    var form = document.getElementById("login-form");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var message = document.getElementById("login-message");
      message.textContent = "";
      api("POST", "/api/login", {
        username: document.getElementById("username").value,
        password: document.getElementById("password").value
      }).then(function (answer) {
        if (answer.status === 200) window.location.assign(form.getAttribute("data-next"));
        else message.textContent = errorText(answer);
      });
    });
  }

  function logout() {
    var button = document.getElementById("logout");
    if (!button) return;
    button.addEventListener("click", function () {
      api("POST", "/api/logout", {}).then(function () {
        window.location.assign(prefix + "/login");
      });
    });
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined || text === "" ? "-" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function overview() {
    var section = document.getElementById("overview");
    if (!section) return;
    var labels = JSON.parse(section.getAttribute("data-labels"));
    var chart = null;
    function render(doc) {
      var body = document.querySelector("#connectors tbody");
      body.textContent = "";
      doc.connectors.forEach(function (c) {
        var row = document.createElement("tr");
        row.setAttribute("data-connector", c.name);
        row.setAttribute("data-health", c.health || "unknown");
        row.setAttribute("data-breaker", c.breaker || "unknown");
        cell(row, c.name);
        cell(row, c.type);
        cell(row, labels[c.health || "unknown"], "health health-" + (c.health || "unknown"));
        cell(row, labels[c.breaker || "unknown"] || c.breaker, "breaker");
        cell(row, c.latency_ms);
        cell(row, c.calls_1m + " / " + c.errors_1m);
        body.appendChild(row);
      });
      var routes = document.querySelector("#routes tbody");
      routes.textContent = "";
      doc.routes.forEach(function (r) {
        var row = document.createElement("tr");
        row.setAttribute("data-route", r.name);
        [r.name, r.depth, r.in_flight, r.parked, r.waiting, r.dead_letters].forEach(
          function (v) { cell(row, v); });
        routes.appendChild(row);
      });
      document.getElementById("updated").textContent = new Date(doc.at * 1000).toLocaleTimeString();
      document.getElementById("refresh-error").textContent = doc.running ? "" : labels.stale;
      if (window.echarts) {
        var held = doc.routes.filter(function (r) { return r.parked || r.waiting || r.dead_letters; });
        if (!held.length) held = doc.routes;
        chart = chart || window.echarts.init(document.getElementById("held-chart"));
        chart.setOption({
          animation: false, tooltip: { trigger: "axis" },
          legend: { data: [labels.parked, labels.waiting, labels.dead_letters] },
          grid: { left: 40, right: 20, bottom: 90 },
          xAxis: { type: "category", data: held.map(function (r) { return r.name; }),
                   axisLabel: { rotate: 40, interval: 0 } },
          yAxis: { type: "value", minInterval: 1 },
          series: [
            { name: labels.parked, type: "bar", stack: "held", data: held.map(function (r) { return r.parked; }) },
            { name: labels.waiting, type: "bar", stack: "held", data: held.map(function (r) { return r.waiting; }) },
            { name: labels.dead_letters, type: "bar", stack: "held", data: held.map(function (r) { return r.dead_letters; }) }
          ]
        });
        section.setAttribute("data-chart", "rendered");
      }
      section.setAttribute("data-refreshed", String(doc.at));
    }
    function refresh() {
      api("GET", "/api/overview").then(function (answer) {
        if (answer.status === 200) render(answer.doc);
        else if (answer.status === 401) window.location.assign(prefix + "/login");
        else document.getElementById("refresh-error").textContent = labels.failed + ": " + errorText(answer);
      }).catch(function () {
        document.getElementById("refresh-error").textContent = labels.failed;
      });
    }
    refresh();
    window.setInterval(refresh, 3000);
  }

  function statistics() {
    var section = document.getElementById("statistics");
    if (!section) return;
    var labels = JSON.parse(section.getAttribute("data-labels"));
    var choice = document.getElementById("chart-by");
    var chart = null;
    var doc = null;
    function fill(id, rows, columns) {
      var body = document.querySelector("#" + id + " tbody");
      body.textContent = "";
      rows.forEach(function (r) {
        var row = document.createElement("tr");
        columns.forEach(function (c) { cell(row, c(r)); });
        body.appendChild(row);
      });
    }
    function key(r, by) {
      var value = r[by];
      return by === "outcome" ? (labels[value] || value) : (value || labels.none);
    }
    function draw() {
      if (!window.echarts || !doc) return;
      var by = choice.value;
      var rows = doc.applications[by];
      chart = chart || window.echarts.init(document.getElementById("stats-chart"));
      chart.setOption({
        animation: false, tooltip: { trigger: "axis" },
        grid: { left: 50, right: 20, bottom: 60 },
        xAxis: { type: "category", data: rows.map(function (r) { return key(r, by); }),
                 axisLabel: { interval: 0 } },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ name: labels.applications, type: "bar",
                   data: rows.map(function (r) { return r.applications; }) }]
      }, true);
      section.setAttribute("data-chart", by);
    }
    function render(found) {
      doc = found;
      document.getElementById("total").textContent = String(doc.total);
      ["type", "channel", "outcome"].forEach(function (by) {
        fill("by-" + by, doc.applications[by], [
          function (r) { return key(r, by); }, function (r) { return r.applications; }]);
      });
      fill("stage-times", doc.stage_times, ["stage", "cases", "p50_s", "p90_s", "max_s"].map(
        function (c) { return function (r) { return r[c]; }; }));
      fill("calls", doc.calls, [
        function (r) { return r.route; }, function (r) { return r.step; },
        function (r) { return r.calls; }, function (r) { return r.failed; },
        function (r) { return (r.failure_rate * 100).toFixed(1) + "%"; }]);
      draw();
      section.setAttribute("data-loaded", "true");
    }
    choice.addEventListener("change", draw);
    var query = "?since=" + encodeURIComponent(section.getAttribute("data-since"))
      + "&until=" + encodeURIComponent(section.getAttribute("data-until")) + "&lang=" + lang;
    fetch(prefix + "/api/statistics" + query, {
      headers: { "Accept": "application/json" }, credentials: "same-origin"
    }).then(function (resp) {
      return resp.json().then(function (found) { return { status: resp.status, doc: found }; });
    }).then(function (answer) {
      if (answer.status === 200) render(answer.doc);
      else if (answer.status === 401) window.location.assign(prefix + "/login");
      else document.getElementById("stats-error").textContent = errorText(answer);
    }).catch(function () {
      document.getElementById("stats-error").textContent = labels.failed;
    });
  }

  function deadLetterActions() {
    var actions = document.getElementById("actions");
    var dialog = document.getElementById("confirm");
    if (!actions || !dialog) return;
    var chosen = "";
    var message = document.getElementById("action-message");
    actions.querySelectorAll("button[data-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        chosen = button.getAttribute("data-action");
        var question = document.getElementById("confirm-question");
        question.textContent = question.getAttribute("data-" + chosen);
        document.getElementById("confirm-reason").value = "";
        dialog.showModal();
      });
    });
    document.getElementById("confirm-cancel").addEventListener("click", function () { dialog.close(); });
    document.getElementById("confirm-ok").addEventListener("click", function () {
      var reason = document.getElementById("confirm-reason");
      if (!reason.value.trim()) { reason.reportValidity(); return; }
      dialog.close();
      api("POST", "/api/dead-letters/" + chosen,
          { id: actions.getAttribute("data-id"), reason: reason.value }).then(function (answer) {
        message.className = answer.status === 200 ? "ok" : "message";
        message.textContent = answer.status === 200 ? answer.doc.message : errorText(answer);
        if (answer.status === 200) {
          actions.textContent = "";
          message.setAttribute("data-done", chosen);
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    login(); logout(); overview(); statistics(); deadLetterActions();
  });
})();
