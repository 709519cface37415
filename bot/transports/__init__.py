"""Transports: each telephony wire format translated to typed events at this edge, and back.

Nothing past this package sees a frame type byte, an AMI header or a WebSocket message
(architecture habit 4). ``audiosocket`` carries Asterisk's call audio and ``ami`` does the
one thing AudioSocket cannot, a transfer; ``asterisk`` joins them into a call's line.
``softphone`` is the browser's line (a WebSocket and its page); ``simulated`` plays a
recording as a caller. Bytes in, events out; actions in, bytes out.
"""
