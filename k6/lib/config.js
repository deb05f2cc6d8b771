// Settings every scenario reads, from k6's environment (`k6 run -e NAME=value` or the process
// environment; tools/k6run passes them). Nothing else in k6/ reads __ENV.
//
//   BASE_URL      API root (default BOXOFFICE_TEST_BASE_URL, else http://127.0.0.1:8080)
//   TOKENS_CSV    userId,accessToken file of the seeded users (`boxoffice-worker seed
//                 --tokens-csv PATH`; the local stack writes .stack/tokens.csv). Absolute path.
//                 Without it, each VU signs up its own user (and charges points when it pays).
//   CONCERT_ID    concert to queue for (default 1, the arena; the journey defaults to
//                 `random`); `random` = a random on-sale small concert per iteration (ids
//                 2..10001, see worker/src/seed.rs)
//   MAX_WAIT_S    longest a VU waits in the line for ACTIVE before giving up (default 120)
//   POLL_S        fixed poll interval in seconds instead of the server's pollAfterMs (seed 002
//                 used 10/15/20 s)
//   THINK_SCALE   multiplies every sleep between steps (default 1; 0 = no think time)
//   KEEP_HOLDS    1 = do not release holds the scenario does not pay for (default: release, so
//                 a run leaves the inventory as it found it)
//   P95_MS        threshold on p95 of http_req_duration for expected responses (default 500)
//   ERROR_RATE    threshold on http_req_failed (default 0.01); 409 SEAT_UNAVAILABLE and the
//                 other contract outcomes are declared expected per request, so they are not
//                 failures
//   PROFILE, SCALE, VUS_SCALE   see k6/profiles.js

function num(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name}=${raw} is not a number`);
  return n;
}

export const BASE_URL = (__ENV.BASE_URL || __ENV.BOXOFFICE_TEST_BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API = `${BASE_URL}/api/v1`;
export const TOKENS_CSV = __ENV.TOKENS_CSV || __ENV.BOXOFFICE_TOKENS_CSV || '';
export const CONCERT_ID = (__ENV.CONCERT_ID || '').toLowerCase();
export const MAX_WAIT_S = num('MAX_WAIT_S', 120);
export const POLL_S = num('POLL_S', 0);
export const THINK_SCALE = num('THINK_SCALE', 1);
export const KEEP_HOLDS = __ENV.KEEP_HOLDS === '1';
export const P95_MS = num('P95_MS', 500);
export const ERROR_RATE = num('ERROR_RATE', 0.01);
export const PROFILE = __ENV.PROFILE || '';
export const SCALE = num('SCALE', 1);
export const VUS_SCALE = num('VUS_SCALE', 1);

// Seed layout (worker/src/seed.rs): small concerts 2..10001; id % 25 == 0 closed, other
// multiples of 10 upcoming, everything else on sale. Concert 1 (the arena) is always on sale.
export const SMALL_FIRST = 2;
export const SMALL_LAST = 10001;

export function onSale(id) {
  return id === 1 || (id % 25 !== 0 && id % 10 !== 0);
}

/**
 * A concert id for this iteration: CONCERT_ID (else the scenario's `fallback`, default '1'),
 * where `random` means a random on-sale small concert.
 */
export function concertId(fallback = '1') {
  const spec = CONCERT_ID || fallback;
  if (spec !== 'random') return Number(spec);
  for (;;) {
    const id = SMALL_FIRST + Math.floor(Math.random() * (SMALL_LAST - SMALL_FIRST + 1));
    if (onSale(id)) return id;
  }
}
