/* Loaded first: every error the page meets is kept in <html data-errors>, so a headless browser
   (and a curious operator) can read them from the DOM. */
(function () {
  "use strict";
  var root = document.documentElement;
  var errors = [];
  function note(text) {
    errors.push(String(text).slice(0, 300));
    root.setAttribute("data-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) {
      note("failed to load " + (t.src || t.href));
    } else {
      note((e.message || "error") + (e.filename ? " at " + e.filename + ":" + e.lineno : ""));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason;
    note("unhandled rejection: " + (r && r.message ? r.message : r));
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    note("blocked by the content security policy: " + e.blockedURI + " (" + e.violatedDirective + ")");
  });
  var original = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.routeqNoteError = note;
})();
