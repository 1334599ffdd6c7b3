// The audit page's script: "Verify the chain" asks GET {prefix}/api/audit/verify for the
// chosen log and shows the answer (intact with its records, or each problem with its file,
// line and record number). Values go into the page as text, never as HTML.
(function () {
  "use strict";
  function meta(name) {
    var found = document.querySelector('meta[name="' + name + '"]');
    return found ? found.getAttribute("content") : "";
  }

  function verify(section) {
    var prefix = meta("console-prefix");
    var lang = document.documentElement.lang === "en" ? "en" : "zh_CN";
    var result = document.getElementById("verify-result");
    var list = document.getElementById("verify-problems");
    var button = document.getElementById("verify");
    button.disabled = true;
    result.removeAttribute("data-ok");
    result.className = "";
    result.textContent = "…";
    list.textContent = "";
    var query = "?source=" + encodeURIComponent(section.getAttribute("data-source")) +
      "&lang=" + lang;
    fetch(prefix + "/api/audit/verify" + query, {
      headers: { "Accept": "application/json" }, credentials: "same-origin"
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (doc) {
        return { status: resp.status, doc: doc };
      });
    }).then(function (answer) {
      var doc = answer.doc || {};
      if (answer.status !== 200) {
        result.className = "message";
        result.textContent = (doc.error && doc.error.message) || ("HTTP " + answer.status);
        return;
      }
      result.setAttribute("data-ok", doc.ok ? "true" : "false");
      result.className = doc.ok ? "ok" : "message";
      result.textContent = doc.summary;
      (doc.problems || []).forEach(function (p) {
        var item = document.createElement("li");
        item.className = "problem";
        item.setAttribute("data-file", p.file || "");
        item.setAttribute("data-line", String(p.line || ""));
        item.textContent = p.text;
        list.appendChild(item);
      });
      (doc.notices || []).forEach(function (n) {
        var item = document.createElement("li");
        item.className = "notice";
        item.textContent = n;
        list.appendChild(item);
      });
    }).catch(function () {
      result.className = "message";
      result.textContent = "HTTP ?";
    }).then(function () { button.disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("chain");
    if (!section) return;
    document.getElementById("verify").addEventListener("click", function () {
      verify(section);
    });
  });
})();
