"""Transports: each telephony wire format translated to typed events at this edge.

Nothing past this package sees a frame type byte or an AMI header (architecture
habit 4). ``audiosocket`` carries Asterisk's call audio; ``ami`` does the one thing
AudioSocket cannot, a transfer (an AMI ``Redirect`` of the caller's channel).
"""

from __future__ import annotations
