-- Expired rows of the Zipkin index tables go with whole parts, as in every other table: cheaper
-- than rewriting parts, and the same retention behaviour everywhere.
ALTER TABLE {db}.trace_link_spans MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.dependency_links MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.span_names MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.remote_service_names MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.tag_values MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.dependency_links_hourly MODIFY SETTING ttl_only_drop_parts = 1
