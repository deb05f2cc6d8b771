// Who a VU is: a seeded user from TOKENS_CSV (10,000 users with 1,000,000 points each), or a
// user it signs up itself.
//
// With the CSV, VU n is user n (wrapping around), so VUs never share a user while there are
// fewer VUs than users: the gateway limits requests per user (BOXOFFICE_USER_RATE_PER_SEC) and
// the waiting room keeps one place per user, so sharing would measure the wrong thing.

import { SharedArray } from 'k6/data';
import { TOKENS_CSV } from './config.js';
import { post } from './http.js';

// SharedArray: parsed once, shared read-only by every VU (a 10,000-line CSV copied per VU
// would cost megabytes each).
const tokens = TOKENS_CSV
  ? new SharedArray('tokens', () => {
    const rows = [];
    for (const line of open(TOKENS_CSV).split('\n').slice(1)) {
      const comma = line.indexOf(',');
      if (comma > 0) rows.push({ userId: Number(line.slice(0, comma)), accessToken: line.slice(comma + 1).trim() });
    }
    if (rows.length === 0) throw new Error(`${TOKENS_CSV} has no userId,accessToken rows`);
    return rows;
  })
  : null;

export function hasTokens() {
  return tokens !== null;
}

/** How many seeded users the CSV holds (0 without one). */
export function tokenCount() {
  return tokens ? tokens.length : 0;
}

/** Seeded user number i (wrapping). */
export function tokenUser(i) {
  return tokens[i % tokens.length];
}

/** A random seeded user. */
export function randomTokenUser() {
  return tokens[Math.floor(Math.random() * tokens.length)];
}

/** POST /users: a new user `{userId, accessToken}` (no points yet), or null on failure. */
export function signUp(name) {
  const r = post('/users', 'POST /users', { name: name || `k6-${__VU}-${__ITER}` }, { expected: [201] });
  return r.ok && r.body ? { userId: r.body.userId, accessToken: r.body.accessToken, signedUp: true } : null;
}

let mine = null;

/** This VU's user: seeded user number __VU-1 with a CSV, else one it signed up (once per VU). */
export function vuUser() {
  if (mine) return mine;
  mine = tokens ? tokenUser(__VU - 1) : signUp(`k6-vu-${__VU}`);
  return mine;
}

/** A random seeded user when there is a CSV, else this VU's own user. */
export function anyUser() {
  return tokens ? randomTokenUser() : vuUser();
}
