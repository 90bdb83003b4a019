// On the pages that draw plotly figures, start loading plotly.js (3.5 MB to parse) as the page
// starts, so that the browser parses it while the server queries the page's data. dcc.Graph would
// load it only when the first figure mounts, after the data has arrived: then the parse adds to
// the wait. dcc.Graph uses window.Plotly when it is set (Promise.resolve(window.Plotly || load)), so
// until plotly.js has run, window.Plotly is a promise of it (plotly.js replaces it with itself):
// the figures wait for this load instead of starting a second one.
(function () {
    var FIGURE_PAGES = /\/(service|traces?)\/?$/;
    var config = document.getElementById("_dash-config");
    if (window.Plotly || !config || !FIGURE_PAGES.test(window.location.pathname)) {
        return;
    }
    var settings = JSON.parse(config.textContent);
    if (!settings.serve_locally) {
        return;  // plotly.js comes from a CDN then: leave it to dcc.Graph
    }
    // the URL dash-renderer gives dcc.Graph (window._dashPlotlyJSURL), so the browser's cache serves both
    var url = settings.requests_pathname_prefix + "_dash-component-suites/plotly/package_data/plotly.min.js";
    var start;
    var loaded = new Promise(function (resolve, reject) {
        start = function () {
            var script = document.createElement("script");
            script.src = url;
            script.async = true;
            script.onload = function () { resolve(); };
            script.onerror = function (error) {
                if (window.Plotly === pending) {
                    delete window.Plotly;  // let dcc.Graph try again itself
                }
                reject(error);
            };
            document.head.appendChild(script);
        };
    });
    var pending = {then: loaded.then.bind(loaded)};
    window.Plotly = pending;
    window.meshscopeAfterDataRequest(start);
})();
