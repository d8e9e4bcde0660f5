// `node --import ./guests/javascript/testing/register.mjs --test …`: makes
// every `sandbot:bot/*` import resolve to the fake host, so a command's
// `handle()` runs under plain Node (see fake-host.mjs).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
