"""caxton-actors: cluster coordination for agent platforms, on Pykka actors and gevent."""

__version__ = "0.1.0"
