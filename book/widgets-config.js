// Serve the ipywidgets HTML manager's own files (icon fonts) from the book's
// vendor folder instead of a CDN: its webpack public path is derived from
// this module's requirejs URL, which would otherwise be relative to each page.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": here.replace(/\/$/, "") } });
})();
