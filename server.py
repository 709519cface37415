"""The 1022 branch-7 switchboard server: ``python server.py`` (``make run``).

The application lives in ``bot.app.server``; this file is the entry point the README names.
"""

from bot.app.server import main

if __name__ == "__main__":
    main()
