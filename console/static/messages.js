// The parked message page's "retry now": a confirmation with a reason, then
// POST {prefix}/api/parked/retry with the session's CSRF token. Answers go into the
// page as text (textContent), never as HTML.
(function () {
  "use strict";
  var meta = function (name) {
    var found = document.querySelector('meta[name="' + name + '"]');
    return found ? found.getAttribute("content") : "";
  };

  function retryNow() {
    var actions = document.getElementById("parked-actions");
    var button = document.getElementById("retry-now");
    var dialog = document.getElementById("retry-dialog");
    if (!actions || !button || !dialog) return;
    var message = document.getElementById("retry-message");
    var reason = document.getElementById("retry-reason");
    var lang = document.documentElement.lang === "en" ? "en" : "zh_CN";
    button.addEventListener("click", function () {
      reason.value = "";
      dialog.showModal();
    });
    document.getElementById("retry-cancel").addEventListener("click", function () { dialog.close(); });
    document.getElementById("retry-ok").addEventListener("click", function () {
      if (!reason.value.trim()) { reason.reportValidity(); return; }
      dialog.close();
      fetch(meta("console-prefix") + "/api/parked/retry?lang=" + lang, {
        method: "POST", credentials: "same-origin",
        headers: { "Accept": "application/json", "Content-Type": "application/json",
                   "X-CSRF-Token": meta("csrf-token") },
        body: JSON.stringify({ id: actions.getAttribute("data-id"), reason: reason.value })
      }).then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (doc) {
          var ok = resp.status === 200;
          message.className = ok ? "ok" : "message";
          message.textContent = ok ? doc.message
            : ((doc.error && doc.error.message) || ("HTTP " + resp.status));
          if (ok) {
            actions.textContent = "";
            message.setAttribute("data-done", "retry");
          }
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", retryNow);
})();
