// `!jscount <text>`: counts the words of a text and names the most common
// one. A sandbot command in JavaScript, built with componentize-js against
// wit/0.2.1 (see docs/writing-a-command.md).
import { sendMessage } from 'sandbot:bot/chat@0.2.1';
import { log } from 'sandbot:bot/log@0.2.1';

const USAGE = 'jscount <text…>';

export function describe() {
  return {
    name: 'jscount',
    summary: 'Counts the words of a text (a command in JavaScript).',
    usage: USAGE,
    needs: ['chat.send-message'],
    options: [
      { name: 'text', description: 'The text to count', kind: 'string', required: true, choices: [] },
    ],
  };
}

export function handle(invocation) {
  const words = invocation.args
    .split(/\s+/)
    .map((w) => w.replace(/^[.,;:!?"'()]+|[.,;:!?"'()]+$/g, '').toLowerCase())
    .filter((w) => w.length > 0);
  if (words.length === 0) {
    // A thrown `{ payload }` is the `err` of `handle`: the reply the user reads.
    throw { payload: `Give me some text to count.\nUsage: \`${invocation.prefix}${USAGE}\`` };
  }
  const counts = new Map();
  for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
  const [word, times] = [...counts].reduce((best, next) => (next[1] > best[1] ? next : best));
  log('debug', `counted ${words.length} words`);
  try {
    sendMessage(`${words.length} words; the most common is “${word}” (${times}×).`, []);
  } catch (e) {
    // A host error (e.g. not granted) is thrown with the WIT error as `payload`.
    throw { payload: `I could not answer: ${e.payload?.tag ?? e}: ${e.payload?.val ?? ''}` };
  }
}
