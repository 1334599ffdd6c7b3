// The channels page: suspend or resume a client or a whole channel after a
// confirmation with a reason (POST {prefix}/api/channels/suspend|resume with the
// session's CSRF token), then show the page again. Values go in as text only.
(function () {
  "use strict";
  var meta = function (name) {
    var found = document.querySelector('meta[name="' + name + '"]');
    return found ? found.getAttribute("content") : "";
  };

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("channels");
    var dialog = document.getElementById("channel-confirm");
    if (!table || !dialog) return;
    var labels = JSON.parse(table.getAttribute("data-labels"));
    var lang = document.documentElement.lang === "en" ? "en" : "zh_CN";
    var message = document.getElementById("channel-message");
    var reason = document.getElementById("channel-reason");
    var chosen = null;

    table.querySelectorAll("button[data-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        chosen = { action: button.getAttribute("data-action"),
                   kind: button.getAttribute("data-kind"),
                   name: button.getAttribute("data-name") };
        document.getElementById("channel-question").textContent =
          labels[chosen.action + "-" + chosen.kind].replace("{name}", chosen.name);
        reason.value = "";
        dialog.showModal();
      });
    });
    document.getElementById("channel-cancel").addEventListener("click", function () {
      dialog.close();
    });
    document.getElementById("channel-ok").addEventListener("click", function () {
      if (!reason.value.trim()) { reason.reportValidity(); return; }
      dialog.close();
      fetch(meta("console-prefix") + "/api/channels/" + chosen.action + "?lang=" + lang, {
        method: "POST", credentials: "same-origin",
        headers: { "Accept": "application/json", "Content-Type": "application/json",
                   "X-CSRF-Token": meta("csrf-token") },
        body: JSON.stringify({ kind: chosen.kind, name: chosen.name, reason: reason.value })
      }).then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (doc) {
          var error = doc.error && doc.error.message;
          message.className = resp.status === 200 ? "ok" : "message";
          message.textContent = resp.status === 200 ? doc.message : (error || "HTTP " + resp.status);
          message.setAttribute("data-done", resp.status === 200 ? chosen.action : "");
          if (resp.status === 200) window.setTimeout(function () { window.location.reload(); }, 1200);
        });
      });
    });
  });
})();
