"""Talking to the relay: settings and replies, framing, the connection and the channel.

No database here.
"""
