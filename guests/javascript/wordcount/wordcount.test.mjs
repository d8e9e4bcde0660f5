// `make test` runs these under plain Node with the fake host
// (node --import ../testing/register.mjs --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { run, invocation } from '../testing/fake-host.mjs';
import * as command from './wordcount.js';

test('counts words and names the most common', () => {
  const done = run(command, invocation('jscount', 'The cat and the hat, and THE bat.'));
  assert.deepEqual(done.replies, ['8 words; the most common is “the” (3×).']);
  assert.equal(done.logs.length, 1);
  assert.equal(done.error, null);
});

test('nothing to count says how', () => {
  const done = run(command, invocation('jscount', ' ... '));
  assert.equal(done.error, 'Give me some text to count.\nUsage: `!jscount <text…>`');
  assert.deepEqual(done.replies, []);
});

test('without its grant it says so', () => {
  const done = run(command, invocation('jscount', 'a b'), { grants: [] });
  assert.deepEqual(done.denied, ['chat.send-message']);
  assert.match(done.error, /^I could not answer: denied/);
});
