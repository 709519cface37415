"""The bot's web pages: the browser softphone (``softphone``)."""
