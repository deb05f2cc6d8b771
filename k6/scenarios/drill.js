// The load a fault drill runs under (tools/drill): the whole journey of seed 004 by seeded
// users, join the line of a random on-sale concert, wait for ACTIVE, pick and hold a seat, pay,
// written the way a careful client behaves through a fault: a transport error, 502, 503 or
// 504 is retried after a short pause, and writes are retried with the SAME Idempotency-Key,
// so a retry finds the first answer instead of making a second hold or payment.
//
// Every acknowledged write is logged to the console (`k6 --console-output FILE`) as
//   ACK hold <holdId>            a hold answered 201
//   ACK pay <holdId> <paymentId> a payment answered 201
// so that the drill can check afterwards that Postgres has every one of them.
//
//   DRILL_VUS (default 30), DRILL_SECONDS (default 30), TOKENS_CSV (required: seeded users)

import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { concertId } from '../lib/config.js';
import { get, idempotencyKey, post } from '../lib/http.js';
import { join, leave, poll, session } from '../lib/queue.js';
import { chooseSeat } from '../lib/sales.js';
import { hasTokens, tokenUser } from '../lib/users.js';

const VUS = Number(__ENV.DRILL_VUS || 30);
const SECONDS = Number(__ENV.DRILL_SECONDS || 30);

export const options = {
  scenarios: { drill: { executor: 'constant-vus', vus: VUS, duration: `${SECONDS}s`, gracefulStop: '10s' } },
  // The drill judges the run itself (tools/drill); k6's thresholds would only duplicate it.
  thresholds: {},
  summaryTrendStats: ['avg', 'med', 'max', 'p(95)', 'p(99)'],
  systemTags: ['status', 'method', 'name', 'scenario', 'expected_response'],
  userAgent: 'boxoffice-k6-drill',
};

/** Journeys that ended paid, and those a fault cut short (retries exhausted). */
const journeysPaid = new Counter('boxoffice_drill_journeys_paid');
const journeysCut = new Counter('boxoffice_drill_journeys_cut');

const RETRYABLE = [0, 502, 503, 504];
const ATTEMPTS = 20; // 20 x 0.5 s: a fault the stack recovers from within 10 s is ridden out

/** Calls `send` until its status is not a transport error or a 502/503/504, at most ATTEMPTS. */
function retrying(send) {
  let r = send();
  for (let i = 1; i < ATTEMPTS && RETRYABLE.includes(r.status); i++) {
    sleep(0.5);
    r = send();
  }
  return r;
}

function waitActive(s, deadline) {
  const joined = retrying(() => join(s));
  if (!joined.ok || !s.queueToken) return false;
  while (s.status !== 'ACTIVE') {
    if (Date.now() > deadline) return false;
    sleep(Math.min(s.pollAfterMs, 1000) / 1000);
    const p = retrying(() => poll(s));
    if (p.status === 410) {
      if (!retrying(() => join(s)).ok) return false;
    } else if (p.status !== 200) {
      return false;
    }
  }
  return true;
}

export default function () {
  if (!hasTokens()) throw new Error('the drill needs TOKENS_CSV (seeded users)');
  // A different seeded user every iteration, never shared by two VUs at once.
  const user = tokenUser(__ITER * VUS + __VU - 1);
  const s = session(user, concertId('random'));
  if (!waitActive(s, Date.now() + 30000)) {
    journeysCut.add(1);
    return;
  }
  const choice = retrying(() => ({ status: 200, choice: chooseSeat(s) })).choice;
  if (!choice) {
    leave(s);
    return;
  }
  const holdKey = idempotencyKey('hold');
  const hold = retrying(() => post(`/schedules/${choice.scheduleId}/holds`, 'POST /schedules/{id}/holds',
    { seatIds: [choice.seatId] },
    { session: s, expected: [201, 403, 409, 422], headers: { 'Idempotency-Key': holdKey } }));
  if (hold.status !== 201) {
    if (RETRYABLE.includes(hold.status)) journeysCut.add(1);
    leave(s);
    return;
  }
  console.log(`ACK hold ${hold.body.holdId}`);
  const payKey = idempotencyKey('pay');
  const paid = retrying(() => post(`/holds/${hold.body.holdId}/payment`, 'POST /holds/{id}/payment', undefined,
    { session: { user }, expected: [201, 402, 404, 409, 410], headers: { 'Idempotency-Key': payKey } }));
  if (paid.status === 201) {
    console.log(`ACK pay ${hold.body.holdId} ${paid.body.paymentId}`);
    journeysPaid.add(1);
  } else if (RETRYABLE.includes(paid.status)) {
    journeysCut.add(1);
  }
  check(paid, { 'journey ends paid': (r) => r.status === 201 });
  // Reading back what was bought is part of the journey (and of what a fault must not break).
  retrying(() => get('/me/reservations', 'GET /me/reservations', { session: { user } }));
}
