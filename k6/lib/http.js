// Thin request helpers: JSON in and out, auth headers, a stable `name` tag per endpoint (so
// k6's metrics group `/concerts/17` and `/concerts/42` under one name), and the statuses the
// contract promises as outcomes declared expected, so http_req_failed counts real failures only.
//
// Every helper takes `expected`, a list of statuses; anything else fails the request's check
// and counts in http_req_failed.

import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { API } from './config.js';

/** Contract outcomes seen (409 SEAT_UNAVAILABLE, 403 QUEUE_NOT_ACTIVE...), tagged by code. */
export const outcomes = new Counter('boxoffice_outcomes');

function params(name, session, expected, extraHeaders) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (session && session.user && session.user.accessToken) headers.Authorization = `Bearer ${session.user.accessToken}`;
  if (session && session.queueToken) headers['Queue-Token'] = session.queueToken;
  Object.assign(headers, extraHeaders || {});
  return {
    headers,
    tags: { name },
    responseCallback: http.expectedStatuses(...expected),
    timeout: '30s',
  };
}

/** The response body as JSON, or null (empty body, HTML error page...). */
export function body(res) {
  if (!res || !res.body) return null;
  try {
    return JSON.parse(res.body);
  } catch (_) {
    return null;
  }
}

function finish(res, name, expected, session) {
  const ok = check(res, { [`${name} -> ${expected.join('|')}`]: (r) => expected.includes(r.status) });
  const b = body(res);
  if (res.status >= 400 && res.status < 500 && expected.includes(res.status)) {
    outcomes.add(1, { code: (b && b.code) || String(res.status), endpoint: name });
  }
  // The contract: a client always replaces its queue token with the latest one returned.
  if (session) {
    const fresh = (b && b.queueToken) || res.headers['Queue-Token'];
    if (fresh) session.queueToken = fresh;
  }
  return { res, status: res.status, ok, body: b };
}

/** GET API path. */
export function get(path, name, { session, expected = [200], headers } = {}) {
  const res = http.get(`${API}${path}`, params(name, session, expected, headers));
  return finish(res, name, expected, session);
}

/** POST API path with a JSON body. */
export function post(path, name, payload, { session, expected = [200, 201], headers } = {}) {
  const res = http.post(`${API}${path}`, payload === undefined ? null : JSON.stringify(payload),
    params(name, session, expected, headers));
  return finish(res, name, expected, session);
}

/** DELETE API path. */
export function del(path, name, { session, expected = [204], headers } = {}) {
  const res = http.del(`${API}${path}`, null, params(name, session, expected, headers));
  return finish(res, name, expected, session);
}

/** A key unique to this VU and iteration, for Idempotency-Key headers. */
export function idempotencyKey(prefix) {
  return `${prefix}-${__VU}-${__ITER}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
}
