"""Side-by-side cluster benchmarks of SWIM membership systems (caxton, Serf, kinship).

Run with ``python -m bench.peers.run --quick --nodes 5,10``; see ``bench/PEERS.md``.
A system is plugged in through the ``Driver`` protocol in ``bench.peers.driver``.
"""
