// Smoke: every endpoint of the contract a few times, so a short run leaves a series behind for
// every route, status family and business counter (tools/check-dashboards --with-load runs it),
// and so a new build can be checked end to end in 15 s. Uses seeded users (TOKENS_CSV) when
// given; buys at most one seat per iteration, in a random small concert.

import { check } from 'k6';
import http from 'k6/http';
import { options as base } from '../lib/options.js';
import { BASE_URL, concertId } from '../lib/config.js';
import { anyUser } from '../lib/users.js';
import { get } from '../lib/http.js';
import { joinAndWaitActive, leave, poll, session } from '../lib/queue.js';
import { charge, concert, holdOneSeat, listConcerts, pay, release, think } from '../lib/sales.js';

export const options = base('smoke');

// The queue and purchase part uses two concerts per run, not a new one each iteration: each
// then sees joins all through the run, so per-concert rates (the waiting-room board's join p99)
// have two scrapes to compare. A fresh random pair each run, so repeated runs never sell one out.
export function setup() {
  return { concerts: [concertId('random'), concertId('random')] };
}

export default function (data) {
  check(http.get(`${BASE_URL}/hello`, { tags: { name: 'GET /hello' } }), { 'hello 200': (r) => r.status === 200 });
  listConcerts(10);
  concert(concertId('random'));
  get('/concerts/999999999', 'GET /concerts/{id} (missing)', { expected: [404] });
  const user = anyUser();
  if (!user) return;
  get('/me/points', 'GET /me/points', { session: { user } });
  charge(user, 10);

  const s = session(user, data.concerts[__ITER % 2]);
  if (joinAndWaitActive(s, 10)) {
    poll(s);
    const hold = holdOneSeat(s);
    if (hold && Math.random() < 0.5) {
      pay(s, hold.holdId);
    } else {
      if (hold) release(s, hold.holdId);
      leave(s);
    }
  }
  get('/me/reservations', 'GET /me/reservations', { session: { user } });
  think(0.5);
}
