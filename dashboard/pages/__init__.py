"""One module per page. Each has ``PATH``, ``layout(app, params)`` (the page's skeleton, drawn from
the URL's parameters) and ``register(app, source)`` (its callbacks). Callbacks are thin: the work is
in plain functions taking the data source and the URL's parameters, which the tests call directly."""
