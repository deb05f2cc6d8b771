// Seed 001 #1: a user looks at the points balance and tops it up, then pauses a second.
// Ported: GET /point/{userId} + PATCH /point -> GET /me/points + POST /me/points/charges.
// Default profile: seed001-points (the seed grew it by hand; try --profile seed002).

import { check } from 'k6';
import { options as base } from '../lib/options.js';
import { anyUser } from '../lib/users.js';
import { get } from '../lib/http.js';
import { charge, think } from '../lib/sales.js';

export const options = base('seed001-points');

export default function () {
  const user = anyUser();
  if (!user) return;
  const before = get('/me/points', 'GET /me/points', { session: { user } });
  const after = charge(user, 1000);
  check(after, { 'balance grew by the charge': (r) => !before.body || !r.body || r.body.balance >= before.body.balance + 1000 });
  think(1);
}
