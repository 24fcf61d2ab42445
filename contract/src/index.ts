/**
 * @agent-platform/contract: every shape that crosses a process or storage boundary (the runner's
 * HTTP API and NDJSON stream, the agent protocol, the callables and REST bodies, the Firestore
 * documents), the error codes, every size limit and the timeout budget, each declared once.
 */
export * from './agent-protocol.ts';
export * from './app-check.ts';
export * from './callable-names.ts';
export * from './callables.ts';
export * from './collections.ts';
export * from './deadline.ts';
export * from './env-table.ts';
export * from './errors.ts';
export * from './firestore.ts';
export * from './id-rules.ts';
export * from './ids.ts';
export * from './limits.ts';
export * from './ndjson.ts';
export * from './protocol.ts';
export * from './run.ts';
export * from './timeouts.ts';
