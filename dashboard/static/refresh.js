// Reloads a page that shows something running, every data-refresh
// milliseconds, unless the user is busy with a form; asks before the
// actions marked data-confirm.
(function () {
  "use strict";
  var ms = Number(document.body.dataset.refresh || 0);
  if (ms > 0) {
    var reload = function () {
      var busy = document.activeElement && document.activeElement.matches("input, select, textarea");
      if (busy) {
        setTimeout(reload, ms);
      } else {
        location.reload();
      }
    };
    setTimeout(reload, ms);
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.dataset.confirm)) {
        ev.preventDefault();
      }
    });
  });
})();
