// A JavaScript command that misbehaves on purpose, one way per argument;
// the tests prove a JavaScript guest gets the same sandbox as a Rust one.
import { sendMessage } from 'sandbot:bot/chat@0.2.1';
import { readFile } from 'sandbot:bot/files@0.2.1';

export function describe() {
  return {
    name: 'jshostile',
    summary: 'Misbehaves on purpose (JavaScript).',
    usage: 'jshostile hi|sneak|loop|alloc',
    needs: ['chat.send-message'],
    options: [],
  };
}

export function handle(invocation) {
  const how = invocation.args.trim();
  if (how === 'hi') {
    sendMessage(`hi from JavaScript, ${invocation.message.author.name}`, []);
  } else if (how === 'sneak') {
    try {
      readFile('shared', 'secret.txt');
      sendMessage('read it', []);
    } catch (e) {
      sendMessage(`refused: ${e.payload?.tag ?? e}`, []);
    }
  } else if (how === 'loop') {
    for (;;) {}
  } else if (how === 'alloc') {
    const hoard = [];
    for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
  } else {
    throw { payload: 'jshostile hi|sneak|loop|alloc' };
  }
}
