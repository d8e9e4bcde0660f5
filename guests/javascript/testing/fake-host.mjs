// Unit tests of a JavaScript command without the bot: the host functions
// a command imports, recording what it does, as the Rust SDK's FakeHost
// does. As in the bot, a call the command's `describe().needs` does not
// cover throws `{ payload: { tag: 'denied', val } }`.
//
//   import { run, invocation } from '../testing/fake-host.mjs';
//   import * as command from './wordcount.js';
//   const done = run(command, invocation('jscount', 'a b a'));

let current = null;

function granted(iface, fn) {
  const host = current;
  if (!host) throw new Error('a host function was called outside run()');
  if (!host.grants.includes(iface) && !host.grants.includes(`${iface}.${fn}`)) {
    host.done.denied.push(`${iface}.${fn}`);
    throw { payload: { tag: 'denied', val: `${iface}.${fn} is not granted to this command` } };
  }
  return host;
}

export function sendMessage(content, files) {
  const host = granted('chat', 'send-message');
  host.done.replies.push(content);
  return String(host.done.replies.length);
}

export function sendPrivate(content, files) {
  const host = granted('chat', 'send-private');
  host.done.private.push(content);
  return String(host.done.private.length);
}

export function readFile(root, path) {
  const host = granted('files', 'read-file');
  const data = host.files.get(`${root}/${path}`);
  if (data === undefined) throw { payload: { tag: 'not-found', val: path } };
  return { name: path.split('/').pop(), data };
}

export function callModel(prompt) {
  const host = granted('model', 'call-model');
  host.done.prompts.push(prompt);
  if (host.modelAnswers.length === 0) throw { payload: { tag: 'unavailable', val: 'the fake model has no answer left' } };
  return host.modelAnswers.shift();
}

export function logFeedback(text) {
  const host = granted('store', 'log-feedback');
  host.done.feedback.push(text);
  return BigInt(host.done.feedback.length);
}

export function log(level, message) {
  current.done.logs.push([level, message]);
}

/// Runs `command.handle(inv)`; `setup` may give `grants` (default: the
/// declared needs), `files` ({ 'root/path': Uint8Array }) and `modelAnswers`.
export function run(command, inv, setup = {}) {
  const done = { replies: [], private: [], logs: [], feedback: [], prompts: [], denied: [], error: null };
  current = {
    grants: setup.grants ?? command.describe().needs,
    files: new Map(Object.entries(setup.files ?? {})),
    modelAnswers: [...(setup.modelAnswers ?? [])],
    done,
  };
  try {
    command.handle(inv);
  } catch (e) {
    done.error = e?.payload ?? String(e);
  } finally {
    current = null;
  }
  return done;
}

/// `!command args` by `author` in a server channel, as the bot builds it.
export function invocation(command, args = '', author = 'Ada') {
  return {
    command,
    args,
    prefix: '!',
    source: 'prefix',
    options: [],
    message: {
      id: '1000',
      channel: '2000',
      guild: '3000',
      author: { id: '4000', name: author, isOperator: false, roles: [], voiceChannel: undefined },
      content: `!${command} ${args}`.trim(),
      attachments: [],
    },
  };
}
