// The console's shared script: login, logout, the statistics' tables and chart, and the
// dead-letter actions; the helpers a page's own script uses (overview.js) are on
// window.bdchubConsole. Values go into the page as text (textContent), never as HTML.
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
    return fetch(prefix + path + (path.indexOf("?") < 0 ? "?" : "&") + "lang=" + lang, {
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

  // For the pages' own scripts (deferred before this one, run at DOMContentLoaded).
  window.bdchubConsole = { api: api, errorText: errorText, cell: cell, prefix: prefix };

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
      if (by === "outcome") return labels[value] || value;
      if (!value) return labels.none;
      var name = doc.names && doc.names[by] && doc.names[by][value];
      return name ? value + " " + name : value;  // the code beside its name
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
        // Time reads as a line; the other dimensions as bars.
        series: [{ name: labels.applications, type: by === "period" ? "line" : "bar",
                   data: rows.map(function (r) { return r.applications; }) }]
      }, true);
      section.setAttribute("data-chart", by);
    }
    function render(found) {
      doc = found;
      document.getElementById("total").textContent = String(doc.total);
      document.getElementById("summary").textContent = doc.summary || "";
      ["division", "period", "type", "channel", "outcome"].forEach(function (by) {
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
      + "&until=" + encodeURIComponent(section.getAttribute("data-until"))
      + "&period=" + encodeURIComponent(section.getAttribute("data-period")) + "&lang=" + lang;
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
    login(); logout(); statistics(); deadLetterActions();
  });
})();
