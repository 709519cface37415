"""The process: settings (read once at start), the engines every call shares, the HTTP
server and the command line (`python -m bot ...`)."""
