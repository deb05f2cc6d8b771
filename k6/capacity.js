// The load tools/capacity steps up: a constant arrival rate (open model: requests keep coming
// whether or not the server keeps up, as buyers at an on-sale do) on one path mix.
//
//   TARGET     hello    GET /hello (no work: the nginx + gateway ceiling)
//              concert  GET /api/v1/concerts/{random 1..10001} (a Postgres read)
//              poll     GET /api/v1/concerts/1/queue by POLL_USERS users who joined in setup
//              hold     POST a hold on a random arena seat, then DELETE it when placed, by
//                       HOLD_USERS users admitted in setup
//              journey  join, wait ACTIVE, dates, sections, seats, hold, pay (one user per
//                       iteration, from TOKENS_CSV)
//   RATE       iterations per second (default 100)
//   DURATION   how long (default 15s)
//   PRE_VUS, MAX_VUS   VU pool (defaults from RATE: enough for 50 ms / 1 s responses)
// Plus BASE_URL / TOKENS_CSV from lib/config.js. No thresholds: tools/capacity judges each step.

import http from 'k6/http';
import { API, BASE_URL, concertId } from './lib/config.js';
import { tokenCount, tokenUser } from './lib/users.js';
import { body } from './lib/http.js';
import { joinAndWaitActive, leave, session } from './lib/queue.js';
import { holdOneSeat, pay } from './lib/sales.js';

const TARGET = __ENV.TARGET || 'concert';
const RATE = Number(__ENV.RATE || 100);
const DURATION = __ENV.DURATION || '15s';
// VUs needed = rate x response time. Pre-allocate enough for 50 ms responses (a VU created
// mid-step costs a JS runtime start and shows up as dropped iterations); allow up to 1 s (the
// journey waits in line: 30 s). Capped so an overload does not exhaust memory.
const PRE_VUS = Number(__ENV.PRE_VUS || Math.min(2000, Math.max(50, Math.ceil(RATE * 0.05))));
const MAX_VUS = Number(__ENV.MAX_VUS || Math.min(TARGET === 'journey' ? 20000 : 6000,
  Math.max(200, Math.ceil(RATE * (TARGET === 'journey' ? 30 : 1)))));
const POLL_USERS = Number(__ENV.POLL_USERS || 2000);
const HOLD_USERS = Number(__ENV.HOLD_USERS || 100);

export const options = {
  scenarios: {
    capacity: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: PRE_VUS, maxVUs: MAX_VUS, gracefulStop: '5s',
    },
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  // Always-true thresholds: they make k6 export these submetrics (the measured scenario
  // without setup's requests) in --summary-export, which tools/capacity reads.
  thresholds: {
    'http_req_duration{scenario:capacity}': ['max>=0'],
    'http_req_failed{scenario:capacity}': ['rate>=0'],
    'http_reqs{scenario:capacity}': ['count>=0'],
  },
  setupTimeout: '180s',
  discardResponseBodies: TARGET === 'hello' || TARGET === 'concert',
  systemTags: ['status', 'method', 'name', 'scenario', 'expected_response'],
  userAgent: 'boxoffice-capacity',
};

const expected = http.expectedStatuses(200, 201, 204, 409, 422);

function authed(user, queueToken, name) {
  const headers = { Authorization: `Bearer ${user.accessToken}`, 'Content-Type': 'application/json' };
  if (queueToken) headers['Queue-Token'] = queueToken;
  return { headers, tags: { name }, responseCallback: expected };
}

export function setup() {
  if (TARGET === 'poll') {
    const n = Math.min(POLL_USERS, tokenCount());
    if (n === 0) throw new Error('TARGET=poll needs TOKENS_CSV');
    const joined = [];
    for (let i = 0; i < n; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 100); j++) {
        batch.push(['POST', `${API}/concerts/1/queue`, null, authed(tokenUser(j), null, 'setup join')]);
      }
      http.batch(batch).forEach((r, k) => {
        const b = r.status < 300 ? JSON.parse(r.body) : null;
        if (b && b.queueToken) joined.push({ user: tokenUser(i + k), queueToken: b.queueToken });
      });
    }
    if (joined.length === 0) throw new Error('no user could join the line of concert 1');
    return { joined };
  }
  if (TARGET === 'hold') {
    const active = [];
    for (let i = 0; i < Math.min(HOLD_USERS, tokenCount()); i++) {
      const s = session(tokenUser(5000 + i), 1);
      if (joinAndWaitActive(s, 30)) active.push({ user: s.user, queueToken: s.queueToken });
    }
    if (active.length === 0) throw new Error('no user got ACTIVE in the arena within 30 s');
    return { active };
  }
  return {};
}

let mine = null; // this VU's copy of a poller's latest queue token

export default function (data) {
  switch (TARGET) {
    case 'hello':
      http.get(`${BASE_URL}/hello`, { tags: { name: 'GET /hello' } });
      return;
    case 'concert': {
      const id = 1 + Math.floor(Math.random() * 10001);
      http.get(`${API}/concerts/${id}`, { tags: { name: 'GET /concerts/{id}' } });
      return;
    }
    case 'poll': {
      if (!mine) mine = Object.assign({}, data.joined[(__VU - 1) % data.joined.length]);
      const r = http.get(`${API}/concerts/1/queue`, authed(mine.user, mine.queueToken, 'GET /concerts/{id}/queue'));
      const b = r.status === 200 ? body(r) : null;
      if (b && b.queueToken) mine.queueToken = b.queueToken;
      return;
    }
    case 'hold': {
      const a = data.active[Math.floor(Math.random() * data.active.length)];
      const seatId = 1 + Math.floor(Math.random() * 50000);
      const r = http.post(`${API}/schedules/1/holds`, JSON.stringify({ seatIds: [seatId] }),
        authed(a.user, a.queueToken, 'POST /schedules/{id}/holds'));
      const b = r.status === 201 ? body(r) : null;
      if (b && b.holdId) http.del(`${API}/holds/${b.holdId}`, null, authed(a.user, null, 'DELETE /holds/{id}'));
      return;
    }
    case 'journey': {
      const s = session(tokenUser(Math.floor(Math.random() * tokenCount())), concertId('random'));
      if (!joinAndWaitActive(s, 30)) return;
      const hold = holdOneSeat(s);
      if (hold) pay(s, hold.holdId);
      else leave(s);
      return;
    }
    default:
      throw new Error(`unknown TARGET ${TARGET}`);
  }
}
