"""One module per page. Each has ``PATH``, ``layout(app, params, source)`` (the page drawn from the
URL's parameters, with its data, so that a page costs one round trip) and ``register(app, source)``
(its callbacks: refreshes, controls). Callbacks are thin: the work is
in plain functions taking the data source and the URL's parameters, which the tests call directly."""
