-- Shared by the bench/*.lua wrk scripts (loaded with dofile): prints one machine-readable line
-- that scripts/bench-queue parses.
--   RESULT rps=<requests/s> p50_ms=<> p99_ms=<> requests=<n> non2xx=<n> socket_errors=<n>
function report(summary, latency)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
