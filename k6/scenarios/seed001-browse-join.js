// Seed 001 #2: browse a concert and its options, then join the waiting room, pause a second.
// Ported: GET /concert/1 + GET /concerts/1 + POST /concert/wait
//      -> GET /concerts?limit=20 + GET /concerts/{id} + POST /concerts/{id}/queue.
// Joining is idempotent, so a user who comes back keeps the same place.

import { options as base } from '../lib/options.js';
import { concertId } from '../lib/config.js';
import { anyUser } from '../lib/users.js';
import { join, session } from '../lib/queue.js';
import { concert, listConcerts, think } from '../lib/sales.js';

export const options = base('seed001-browse');

export default function () {
  const id = concertId();
  listConcerts(20);
  concert(id);
  const user = anyUser();
  if (user) join(session(user, id));
  think(1);
}
