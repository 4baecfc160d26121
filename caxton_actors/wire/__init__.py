"""Bytes on the network: the codec and the gevent transports."""
