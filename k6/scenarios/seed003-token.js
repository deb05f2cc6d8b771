// Seed 003 #2: queue token issuing. Every iteration a random user joins the line of CONCERT_ID
// (POST /concerts/{id}/queue), which writes the place to Redis; joining again is idempotent
// (200, same place). Default profile: seed003-load; also seed003-soak, -stress, -peak.

import { check } from 'k6';
import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { anyUser } from '../lib/users.js';
import { join, session } from '../lib/queue.js';
import { think } from '../lib/sales.js';

export const options = base('seed003-load');

export default function () {
  const user = anyUser();
  if (!user) return;
  const r = join(session(user, concertId()));
  check(r, { 'token issued': (x) => x.status === 409 || (x.body && typeof x.body.queueToken === 'string') });
  think(1);
}
