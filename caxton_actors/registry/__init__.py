"""The node's SQLite state: schema, migrations and the blocking store."""
