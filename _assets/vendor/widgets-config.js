// cmlib: make the widget bundle find its icon fonts in the vendored copy (vendor/html-manager/),
// whatever the depth of the page. Sphinx stores the page's relative root in data-content_root.
(function () {
  var root = (document.documentElement.dataset && document.documentElement.dataset.content_root) || "./";
  if (typeof require !== "undefined" && require.config) {
    require.config({ paths: { "@jupyter-widgets/html-manager/dist": root + "vendor/html-manager" } });
  }
})();

// cmlib: the widget bundle typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue); the book
// loads MathJax 3, which has no Hub, so every widget page threw "Cannot read properties of undefined
// (reading 'Queue')". Give MathJax 3 (once it replaces its configuration object) a Hub whose Queue
// typesets the element with MathJax 3's typesetPromise.
(function () {
  function withHub(mj) {
    if (mj && typeof mj === "object" && mj.version && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = Array.isArray(job) ? job[2] : undefined;
          var m = window.MathJax;
          if (m && m.typesetPromise) { m.typesetPromise(el ? [el] : undefined).catch(function () {}); }
        }
      };
    }
    return mj;
  }
  var current = withHub(window.MathJax);
  try {
    Object.defineProperty(window, "MathJax", {
      configurable: true,
      get: function () { return current; },
      set: function (v) { current = withHub(v); }
    });
  } catch (e) { /* an older browser: the widgets still work, the labels are not typeset */ }
})();
