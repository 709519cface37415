"""One phone call as rules, without I/O: events in (speech, transcripts, digits, replies, a
clock), actions out (play, stop, ask the brain, transfer, hang up, note). A fake clock tests it."""
