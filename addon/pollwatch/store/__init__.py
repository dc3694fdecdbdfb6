"""SQLite: the schema and the background writer, the SQL views, the queries behind the read
commands, pruning old sessions, and diffing two jobs."""
