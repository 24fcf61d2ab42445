/**
 * The model gateway's pure parts (issue 17). No network, no Docker.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { listedModels, modelRefusal } from '../src/models/model-allowlist.ts';
import type { ModelSettings } from '../src/models/model-gateway.ts';

const SETTINGS: ModelSettings = {
  provider: 'openai',
  baseUrl: 'http://127.0.0.1:9/v1',
  apiKey: undefined,
  allowlist: ['small', 'large'],
  defaultModel: 'small',
  callsPerRun: 5,
  tokensPerRun: 1_000,
  responseMaxBytes: 1024,
  callTimeoutMs: 1_000,
};

describe('admitting a model call', () => {
  test('the one allowlist message, for the run request and the sandbox alike', () => {
    assert.equal(modelRefusal(SETTINGS, 'small'), null);
    assert.equal(modelRefusal({ ...SETTINGS, allowlist: [] }, 'x'.repeat(300)), null, 'empty: any');
    assert.equal(
      modelRefusal(SETTINGS, 'x'.repeat(300)),
      `model "${'x'.repeat(79)} is not allowed here; allowed: small, large`,
    );
    assert.deepEqual(listedModels(SETTINGS), ['small', 'large']);
    assert.deepEqual(listedModels({ ...SETTINGS, allowlist: [] }), ['small']);
    assert.deepEqual(listedModels({ ...SETTINGS, allowlist: [], defaultModel: null }), []);
  });
});
