"""MariaDB for the MySQL tests (the launcher lives in meshscope.devmariadb, shared with the demo)."""

from meshscope.devmariadb import MariaDB, start_mariadb

__all__ = ["MariaDB", "start_mariadb"]
