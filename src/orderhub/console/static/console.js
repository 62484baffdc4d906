// orderhub console: small enhancements only; every page and action works without it.
(function () {
  "use strict";
  // The range picker shows its range as soon as it changes (the Show button stays).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.form) { select.form.submit(); }
    });
  });
  // Live refresh of the overview, remembered for the tab.
  var live = document.querySelector("input[data-live-refresh]");
  if (live) {
    var key = "orderhub-console-live";
    live.checked = sessionStorage.getItem(key) === "1";
    var timer = null;
    var arm = function () {
      if (timer) { clearTimeout(timer); timer = null; }
      if (live.checked) { timer = setTimeout(function () { location.reload(); }, 30000); }
    };
    live.addEventListener("change", function () {
      sessionStorage.setItem(key, live.checked ? "1" : "0");
      arm();
    });
    arm();
  }
})();
