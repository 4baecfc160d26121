"""The actor runtime: Pykka on gevent, and the hub's health."""
