// Seed 001 #4: admitted, look at a section's seats and hold one (no payment).
// The seed PATCHed a random seat of 50; we pick a random AVAILABLE seat from the seat map, and a
// 409 SEAT_UNAVAILABLE (someone was faster) is an outcome, not an error. The hold is released
// afterwards (KEEP_HOLDS=1 keeps it until it expires) and the session is ended.

import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { anyUser } from '../lib/users.js';
import { joinAndWaitActive, leave, session } from '../lib/queue.js';
import { holdOneSeat, releaseUnlessKept, think } from '../lib/sales.js';

export const options = base('seed001-hold');

export default function () {
  const user = anyUser();
  if (!user) return;
  const s = session(user, concertId());
  if (!joinAndWaitActive(s)) return;
  const hold = holdOneSeat(s);
  think(1);
  releaseUnlessKept(s, hold);
  leave(s);
}
