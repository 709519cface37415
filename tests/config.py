"""The settings the tests run with: this process's environment, read once, as ``main`` does."""

from bot.app.settings import Settings

SETTINGS = Settings.from_env()
