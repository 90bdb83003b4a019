// Run the lazily loaded parts of dcc and dash_table that the page will draw (the dropdowns, the
// table: 480 kB of JavaScript, its markdown highlighter, the figure) while the server works on the
// page's data. Left to themselves, they are fetched (a revalidation round trip each) and compiled
// only when the answer has arrived and the page first mounts them, in the path of the drawing.
// A chunk that has run registers itself with its library's webpack runtime (webpackChunk* arrays),
// which then does not load it again; if one fails here, the library loads it as it always did.
(function () {
    var config = document.getElementById("_dash-config");
    if (!config) {
        return;
    }
    var settings = JSON.parse(config.textContent);
    if (!settings.serve_locally) {
        return;  // the libraries come from a CDN then: leave their chunks to them
    }
    var prefix = settings.requests_pathname_prefix || "/";
    var path = window.location.pathname;
    var page = (path.indexOf(prefix) === 0 ? path.slice(prefix.length) : path).split("/")[0];  // "" for the overview
    var suites = prefix + "_dash-component-suites/dash/";
    // the same URLs the libraries ask for, so that the browser's cache serves both
    var chunks = ["dcc/async-dropdown.js", "dash_table/async-table.js"];
    if (/^(|service|topology|traces)$/.test(page)) {  // markdown cells (links) in a table
        chunks.push("dash_table/async-highlight.js");
    }
    if (/^(service|traces?)$/.test(page)) {
        chunks.push("dcc/async-graph.js");
    }
    function start() {
        chunks.forEach(function (chunk) {
            var script = document.createElement("script");
            script.src = suites + chunk;
            script.async = true;
            document.head.appendChild(script);
        });
    }
    window.meshscopeAfterDataRequest(start);
})();
