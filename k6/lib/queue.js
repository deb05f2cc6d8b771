// The waiting room loop: join, poll as the server says (pollAfterMs), always keep the latest
// queue token, give up after MAX_WAIT_S. Bounded in time by construction.

import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { MAX_WAIT_S, POLL_S } from './config.js';
import { del, get, post } from './http.js';

/** Seconds from join to ACTIVE, for VUs that got in. */
export const queueWait = new Trend('boxoffice_queue_wait_seconds');
/** Polls sent. */
export const queuePolls = new Counter('boxoffice_queue_polls');
/** VUs that gave up after MAX_WAIT_S. */
export const queueTimeouts = new Counter('boxoffice_queue_timeouts');

/** A session: who, for which concert, with which queue token. Mutated by every response. */
export function session(user, concertId) {
  return { user, concertId, queueToken: null, status: null, position: null, pollAfterMs: 1000 };
}

function note(s, r) {
  if (r.body) {
    s.status = r.body.status || s.status;
    s.position = r.body.position === undefined ? s.position : r.body.position;
    s.pollAfterMs = r.body.pollAfterMs || s.pollAfterMs;
    s.activeUntil = r.body.activeUntil || s.activeUntil;
  }
  return r;
}

/** POST /concerts/{id}/queue: 201 first time, 200 again; 409 CONCERT_NOT_ON_SALE is an outcome. */
export function join(s) {
  return note(s, post(`/concerts/${s.concertId}/queue`, 'POST /concerts/{id}/queue', undefined,
    { session: s, expected: [200, 201, 409] }));
}

/**
 * GET /concerts/{id}/queue with the current queue token. 410 QUEUE_PLACE_LOST (left, skipped
 * as abandoned, session over) is an outcome: the caller joins again.
 */
export function poll(s) {
  queuePolls.add(1);
  return note(s, get(`/concerts/${s.concertId}/queue`, 'GET /concerts/{id}/queue', { session: s, expected: [200, 410] }));
}

/** DELETE /concerts/{id}/queue: leave the line or end the ACTIVE session early. */
export function leave(s) {
  const r = del(`/concerts/${s.concertId}/queue`, 'DELETE /concerts/{id}/queue', { session: s, expected: [204, 401, 404, 410] });
  s.status = null;
  return r;
}

/**
 * Joins and polls until ACTIVE (true) or MAX_WAIT_S passes (false). Sleeps what the server asks
 * (pollAfterMs) unless POLL_S fixes the interval, and never past the deadline.
 */
export function joinAndWaitActive(s, maxWaitS = MAX_WAIT_S) {
  const started = Date.now();
  const r = join(s);
  if (!r.ok || !s.queueToken) return false;
  const deadline = started + maxWaitS * 1000;
  let rejoins = 0;
  while (s.status !== 'ACTIVE') {
    const left = deadline - Date.now();
    if (left <= 0) {
      queueTimeouts.add(1);
      return false;
    }
    const wait = POLL_S > 0 ? POLL_S * 1000 : s.pollAfterMs;
    sleep(Math.max(0.05, Math.min(wait, left)) / 1000);
    const p = poll(s);
    if (p.status === 410 && rejoins++ < 2) {
      if (!join(s).ok) return false; // place lost: back in line (bounded)
    } else if (p.status !== 200) {
      return false;
    }
  }
  queueWait.add((Date.now() - started) / 1000);
  return true;
}
