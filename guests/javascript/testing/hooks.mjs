// Node's module resolution hook: `sandbot:bot/chat@0.2.1` and the rest are
// the fake host module.
const fake = new URL('./fake-host.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('sandbot:bot/')) {
    return { url: fake, shortCircuit: true };
  }
  return next(specifier, context);
}
