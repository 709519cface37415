"""Branch 7 smart switchboard: a Vietnamese voicebot for Hanoi's 1022 hotline."""
