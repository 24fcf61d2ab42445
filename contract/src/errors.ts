import { z } from 'zod';

/**
 * Error codes the functions give clients: the callables' HttpsError codes, and the `code` of the
 * REST API's `{"error": {...}}` bodies with the HTTP status each maps to.
 */
export const FUNCTIONS_ERROR_HTTP_STATUS = {
  'invalid-argument': 400,
  unauthenticated: 401,
  'permission-denied': 403,
  'not-found': 404,
  aborted: 409,
  'resource-exhausted': 429,
  internal: 500,
  unavailable: 503,
  'deadline-exceeded': 504,
} as const;
export type FunctionsErrorCode = keyof typeof FUNCTIONS_ERROR_HTTP_STATUS;
export const FUNCTIONS_ERROR_CODES = Object.keys(FUNCTIONS_ERROR_HTTP_STATUS) as [
  FunctionsErrorCode,
  ...FunctionsErrorCode[],
];

/** The REST API's error body (and the `error` SSE event's data is its inner object). */
export const restErrorSchema = z.object({
  code: z.enum(FUNCTIONS_ERROR_CODES),
  message: z.string(),
  field: z.string().optional(),
  conversationId: z.string().optional(),
});
export type RestError = z.infer<typeof restErrorSchema>;
export const restErrorBodySchema = z.object({ error: restErrorSchema });
export type RestErrorBody = z.infer<typeof restErrorBodySchema>;

/** Details a callable's HttpsError may carry. */
export const callableErrorDetailsSchema = z.object({
  field: z.string().optional(),
  retryAfterSeconds: z.number().optional(),
  conversationId: z.string().optional(),
});
export type CallableErrorDetails = z.infer<typeof callableErrorDetailsSchema>;

/** Server-Sent Events of POST /api/conversation with `Accept: text/event-stream`. */
export const SSE_EVENTS = { delta: 'delta', result: 'result', error: 'error' } as const;
export const SSE_MEDIA_TYPE = 'text/event-stream';
