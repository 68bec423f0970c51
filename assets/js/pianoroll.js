// Zoom for piano rolls (`<figure class="repo-roll"><img src=".../pianoroll/..."></figure>`,
// or any element with `data-pianoroll` around the image). Adds "Zoom out", "Zoom in" and "Fit"
// buttons before the image and scrolls the figure sideways when the drawing is wider than the
// page. Without JavaScript the drawing is shown at the page's width, as the stylesheet says.
// Sizes are set through the CSSOM, which the pages' Content-Security-Policy allows.
(function () {
  "use strict";
  var STEPS = [0.5, 0.75, 1, 1.5, 2, 3, 4];

  function button(text, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    return b;
  }

  function setup(box) {
    var img = box.querySelector("img");
    if (!img || box.getAttribute("data-zoom-ready")) return;
    box.setAttribute("data-zoom-ready", "1");
    var level = -1; // -1: fit the page; else an index into STEPS of the natural width.

    var bar = document.createElement("div");
    bar.className = "row pianoroll-zoom";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Zoom the piano roll");
    var out = button("\u2212", "Zoom out");
    var inn = button("+", "Zoom in");
    var fit = button("Fit", "Fit the piano roll to the page");
    var said = document.createElement("span");
    said.className = "muted";
    said.setAttribute("aria-live", "polite");
    bar.appendChild(out);
    bar.appendChild(inn);
    bar.appendChild(fit);
    bar.appendChild(said);
    box.insertBefore(bar, box.firstChild);

    function apply() {
      var natural = img.naturalWidth || 0;
      if (level < 0 || !natural) {
        img.style.width = "";
        img.style.maxWidth = "";
        box.style.overflowX = "";
        said.textContent = "Fit to page";
      } else {
        img.style.width = Math.round(natural * STEPS[level]) + "px";
        img.style.maxWidth = "none";
        img.style.height = "auto";
        box.style.overflowX = "auto";
        said.textContent = Math.round(STEPS[level] * 100) + "%";
      }
      out.disabled = level === 0;
      inn.disabled = level === STEPS.length - 1;
      fit.disabled = level < 0;
    }

    // From "fit", zoom from the step nearest to the size the drawing is shown at.
    function current() {
      if (level >= 0) return level;
      var natural = img.naturalWidth || 1;
      var shown = img.getBoundingClientRect().width / natural;
      var best = 0;
      for (var i = 0; i < STEPS.length; i++) {
        if (Math.abs(STEPS[i] - shown) < Math.abs(STEPS[best] - shown)) best = i;
      }
      return best;
    }

    out.addEventListener("click", function () {
      level = Math.max(0, current() - 1);
      apply();
    });
    inn.addEventListener("click", function () {
      level = Math.min(STEPS.length - 1, current() + 1);
      apply();
    });
    fit.addEventListener("click", function () {
      level = -1;
      apply();
    });
    apply();
  }

  document.querySelectorAll("figure.repo-roll, [data-pianoroll]").forEach(setup);
})();
