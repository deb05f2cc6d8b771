// Seed 001 #5: admitted, hold a seat and pay for it with points.
// Payment ends the ACTIVE session (contract), so there is no leave afterwards. Seeded users
// have 1,000,000 points; a signed-up user (no TOKENS_CSV) is charged first.

import { check } from 'k6';
import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { anyUser } from '../lib/users.js';
import { joinAndWaitActive, leave, session } from '../lib/queue.js';
import { charge, holdOneSeat, pay, think } from '../lib/sales.js';

export const options = base('seed001-pay');

export default function () {
  const user = anyUser();
  if (!user) return;
  if (user.signedUp && !user.charged) {
    charge(user, 1000000);
    user.charged = true;
  }
  const s = session(user, concertId());
  if (!joinAndWaitActive(s)) return;
  const hold = holdOneSeat(s);
  if (!hold) {
    leave(s);
    return;
  }
  think(1);
  const p = pay(s, hold.holdId);
  check(p, { 'paid the hold amount': (r) => r.status !== 201 || (r.body && r.body.amount === hold.amount) });
  think(1);
}
