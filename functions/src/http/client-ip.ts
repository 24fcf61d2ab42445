import type { IncomingHttpHeaders } from 'node:http';

/**
 * The client's address, for the per-address message window: the last X-Forwarded-For entry (the
 * one Google's front end appended for the connection it received; a client can add entries
 * before it, never after), else the socket's peer. Null when neither is known. Not verified
 * against real Google front ends from here (no cloud access): behind a Hosting rewrite the last
 * hop may be Hosting's edge, in which case IP_MESSAGES_PER_MINUTE must be set generously.
 */
export function clientIp(req: {
  headers?: IncomingHttpHeaders | undefined;
  socket?: { remoteAddress?: string | undefined } | undefined;
}): string | null {
  const forwarded = req.headers?.['x-forwarded-for'];
  const list = (Array.isArray(forwarded) ? forwarded.join(',') : (forwarded ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && s.length <= 64);
  return list[list.length - 1] ?? req.socket?.remoteAddress ?? null;
}
