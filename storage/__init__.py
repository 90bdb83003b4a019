"""ClickHouse storage: the schema and its versioned migrations, the client factory (embedded chdb
or a server over HTTP, both through clickhouse-connect), batch writers and the read queries.

May import only `meshscope`.
"""
