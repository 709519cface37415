"""A live call: the ordered event pump that joins the transport, VAD, recogniser, call
machine, brain and voice, and records every turn. Audio in, bot audio and call records out."""
