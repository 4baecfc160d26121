// The statsd daemon (npm statsd 0.9.0) between caxton-actors nodes and Graphite's carbon.
// bench/graphite.py fills in the ports (string.Template); for a deployment, put real ones.
{
  servers: [{ server: "./servers/udp", address: "127.0.0.1", port: ${statsd_port} }],
  mgmt_address: "127.0.0.1",
  mgmt_port: ${statsd_mgmt_port},
  graphiteHost: "127.0.0.1",
  graphitePort: ${carbon_line_port},
  backends: ["./backends/graphite"],
  // One point a second, so a two-minute run draws well; 10000 (10 s) is statsd's default.
  flushInterval: ${flush_ms},
  // The layout deploy/grafana/caxton.json queries, written out rather than left to the
  // defaults (legacyNamespace is true by default, which puts counters under stats.<name>
  // and stats_counts.<name>):
  //   stats.gauges.<node>.<name>   stats.counters.<node>.<name>.rate|count
  //   stats.timers.<node>.<name>.mean|upper|upper_90|count|...
  graphite: {
    legacyNamespace: false,
    globalPrefix: "stats",
    prefixCounter: "counters",
    prefixTimer: "timers",
    prefixGauge: "gauges",
    prefixSet: "sets"
  },
  percentThreshold: [90],
  // A node sends every gauge again every 10 s (metrics.GAUGE_INTERVAL); statsd keeps a
  // gauge for 12 flushes after its last value, so a node that stops leaves a gap in its
  // gauges within 12 s instead of its last value drawn forever.
  deleteGauges: true,
  gaugesMaxTTL: ${gauge_ttl_flushes},
  // Counters and timers: a zero (a rate of 0, a timer with no samples) every flush.
  deleteCounters: false,
  deleteTimers: false,
  automaticConfigReload: false
}
