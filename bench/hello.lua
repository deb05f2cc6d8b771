-- wrk script for the baseline: GET /hello (the URL given to wrk), reporting like the others.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

function done(summary, latency, requests)
  report(summary, latency)
end
