// Seed 001 #3: join the line, wait until admitted, then look at the available dates.
// The seed slept a fixed 30 s and hoped; we poll as the server says (pollAfterMs) until
// ACTIVE, bounded by MAX_WAIT_S, then leave so the ACTIVE slot goes to the next in line.

import { check } from 'k6';
import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { anyUser } from '../lib/users.js';
import { joinAndWaitActive, leave, session } from '../lib/queue.js';
import { schedules, think } from '../lib/sales.js';

export const options = base('seed001-dates');

export default function () {
  const user = anyUser();
  if (!user) return;
  const s = session(user, concertId());
  if (!joinAndWaitActive(s)) return;
  const d = schedules(s);
  check(d, { 'dates listed': (r) => r.status === 200 && r.body && Array.isArray(r.body.items) });
  think(1);
  leave(s);
}
