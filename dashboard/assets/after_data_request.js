// window.meshscopeAfterDataRequest(start): run start() once the page has asked the server for its
// data (its first _dash-update-component request), not before: the renderer must first start up and
// send that request, and what the early-loading scripts start (chunks_early.js, plotly_early.js)
// would hold the main thread in its way. Dash loads assets in name order: this file comes first.
(function () {
    var waiting = [];
    var fetch = window.fetch;
    window.fetch = function (resource) {
        var answer = fetch.apply(this, arguments);
        if (String(resource && resource.url || resource).indexOf("_dash-update-component") >= 0) {
            window.fetch = fetch;
            var starts = waiting;
            waiting = null;
            setTimeout(function () { starts.forEach(function (start) { start(); }); }, 0);
        }
        return answer;
    };
    window.meshscopeAfterDataRequest = function (start) {
        if (waiting === null) {
            setTimeout(start, 0);
        } else {
            waiting.push(start);
        }
    };
})();
