/**
 * Cloud Functions (v2). Until the functions issue lands this codebase only answers the old
 * system's health check, so that `firebase deploy` and the emulators have something to load.
 */
import { onRequest } from 'firebase-functions/v2/https';

export const api = onRequest({ region: 'us-central1' }, (req, res) => {
  if (req.method === 'GET' && (req.path === '/health' || req.path === '/api/health')) {
    res.json({ status: 'ok', service: 'api-server' });
    return;
  }
  res.status(404).json({ error: { code: 'not_found', message: 'no such route' } });
});
