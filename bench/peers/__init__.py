"""Side-by-side cluster benchmarks of SWIM membership systems (Serf, kinship, ...).

Run with ``python -m bench.peers.run --system serf --nodes 5,10,20``; see ``bench/PEERS.md``.
A system is plugged in through the ``Driver`` protocol in ``bench.peers.driver``.
"""
