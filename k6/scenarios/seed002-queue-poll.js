// Seed 002: how many users can poll their place in line? Each VU is one user in the line of
// CONCERT_ID (default the arena): it joins once, then polls, keeping the latest queue token and
// sleeping what the server asks (pollAfterMs; POLL_S=15 reproduces the seed's fixed 15 s).
// A user who becomes ACTIVE leaves and joins again at the back, so the line keeps its length.
// Default profile: seed002-queue (up to 6,500 pollers; use --vus-scale on a small box).

import { check, sleep } from 'k6';
import { options as base } from '../lib/options.js';
import { concertId, POLL_S } from '../lib/config.js';
import { vuUser } from '../lib/users.js';
import { join, leave, poll, session } from '../lib/queue.js';

export const options = base('seed002-queue');

let s = null;

export default function () {
  if (!s) {
    const user = vuUser();
    if (!user) return;
    s = session(user, concertId());
    if (!join(s).ok) {
      s = null;
      sleep(1);
      return;
    }
  }
  const wait = POLL_S > 0 ? POLL_S : s.pollAfterMs / 1000;
  sleep(Math.min(Math.max(wait, 0.1), 60));
  const r = poll(s);
  check(r, { 'poll answers WAITING or ACTIVE': (x) => x.status !== 200 || (x.body && (x.body.status === 'WAITING' || x.body.status === 'ACTIVE')) });
  if (r.status !== 200) {
    s = null; // 410 place lost, or the token was refused: join again next iteration
  } else if (s.status === 'ACTIVE') {
    leave(s);
    s = null;
  }
}
