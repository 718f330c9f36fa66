// cmlib: make the widget bundle find its icon fonts in the vendored copy (vendor/html-manager/),
// whatever the depth of the page. Sphinx stores the page's relative root in data-content_root.
(function () {
  var root = (document.documentElement.dataset && document.documentElement.dataset.content_root) || "./";
  if (typeof require !== "undefined" && require.config) {
    require.config({ paths: { "@jupyter-widgets/html-manager/dist": root + "vendor/html-manager" } });
  }
})();
