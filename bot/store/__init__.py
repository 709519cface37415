"""Call records: calls, turns and their outcomes, written as the call happens (SQLite by
default, PostgreSQL by URL). Events in, rows out; read back for review."""
