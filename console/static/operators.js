// The operators page's actions (console/operators_page.py): one confirmation dialog with
// a reason for every change, the fields each change needs, and a generated password
// shown once. Requests go through console.js's api (window.bdchubConsole: the session's
// CSRF token, the page's language). Values go into the page as text, never as HTML.
(function () {
  "use strict";
  var KEPT = "bdchub-operators-message";  // the answer's words, shown after the reload

  function byId(id) { return document.getElementById(id); }

  function words(list) {
    return list.split(/[\s,，;；]+/).filter(function (w) { return w; });
  }

  function reloadSaying(text, action) {
    window.sessionStorage.setItem(KEPT, JSON.stringify({ text: text, action: action }));
    window.location.reload();
  }

  function start() {
    var message = byId("operators-message");
    var kept = window.sessionStorage.getItem(KEPT);
    if (message && kept) {
      window.sessionStorage.removeItem(KEPT);
      kept = JSON.parse(kept);
      message.textContent = kept.text;
      message.setAttribute("data-done", kept.action);
    }
    var dialog = byId("operator-dialog");
    if (!dialog) return;
    var questions = JSON.parse(dialog.getAttribute("data-questions"));
    var fields = { add: ["account-fields", "tenant-fields", "password-fields"],
                   password: ["password-fields"], access: ["access-fields", "tenant-fields"] };
    var action = "", username = "";

    function open(button) {
      action = button.getAttribute("data-action");
      username = button.getAttribute("data-username") || "";
      var row = username ? document.querySelector(
        'tr[data-username="' + CSS.escape(username) + '"]') : null;
      byId("operator-question").textContent = questions[action].replace("{name}", username);
      ["account-fields", "access-fields", "tenant-fields", "password-fields"].forEach(
        function (id) { byId(id).hidden = (fields[action] || []).indexOf(id) < 0; });
      byId("new-username").value = "";
      byId("operator-password").value = "";
      byId("operator-reason").value = "";
      byId("operator-error").textContent = "";
      var roles = row ? row.getAttribute("data-roles").split(",") : [];
      dialog.querySelectorAll('input[name="role"]').forEach(function (box) {
        box.checked = roles.indexOf(box.value) >= 0;
      });
      byId("operator-tenants").value = row ? row.getAttribute("data-tenants") : "";
      dialog.showModal();
    }

    function body() {
      var found = { username: username, reason: byId("operator-reason").value };
      if (action === "add") {
        found.username = byId("new-username").value.trim();
        found.roles = [byId("new-role").value];
      }
      if (action === "access") {
        found.roles = Array.prototype.map.call(
          dialog.querySelectorAll('input[name="role"]:checked'), function (b) { return b.value; });
      }
      if (action === "add" || action === "access") {
        found.tenants = words(byId("operator-tenants").value);
      }
      if (action === "add" || action === "password") {
        if (byId("generate").checked) found.generate = true;
        else found.password = byId("operator-password").value;
      }
      return found;
    }

    document.querySelectorAll("main button[data-action]").forEach(function (button) {
      button.addEventListener("click", function () { open(button); });
    });
    byId("operator-cancel").addEventListener("click", function () { dialog.close(); });
    byId("password-done").addEventListener("click", function () { window.location.reload(); });
    byId("operator-ok").addEventListener("click", function () {
      var reason = byId("operator-reason");
      if (!reason.value.trim()) { reason.reportValidity(); return; }
      var sent = body();
      byId("operator-error").textContent = "";
      var shared = window.bdchubConsole;
      shared.api("POST", "/api/operators/" + action, sent).then(function (answer) {
        if (answer.status !== 200) {
          byId("operator-error").textContent = shared.errorText(answer);
          return;
        }
        dialog.close();
        if (answer.doc.password) {  // generated: shown this once, then gone with the page
          byId("password-note").textContent = questions.generated.replace(
            "{name}", answer.doc.username);
          byId("new-password").textContent = answer.doc.password;
          message.textContent = answer.doc.message;
          byId("password-shown").showModal();
          return;
        }
        reloadSaying(answer.doc.message, action);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
