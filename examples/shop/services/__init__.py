"""One module per shop service; each is runnable: ``python -m examples.shop.services.NAME --help``."""
