// Copy buttons for command lines (`<button data-copy="…" hidden>`). Without JavaScript the
// buttons stay hidden and the commands are ordinary selectable text.
(function () {
  "use strict";
  var status = document.querySelector("[data-copy-status]");

  function say(button, short, text) {
    if (status) status.textContent = text;
    button.textContent = short;
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }

  // Plain http on a LAN has no async clipboard: select the command and use the old API.
  function fallback(button, text) {
    var code = button.parentNode.querySelector("code");
    var range = document.createRange();
    range.selectNodeContents(code || button);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    if (ok) say(button, "Copied", "Copied to the clipboard");
    else say(button, "Selected", "Selected: press Ctrl+C or \u2318C to copy");
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { say(button, "Copied", "Copied to the clipboard"); },
          function () { fallback(button, text); }
        );
      } else {
        fallback(button, text);
      }
    });
  });
})();
