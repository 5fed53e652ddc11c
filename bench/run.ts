// `npm run bench [-- suite…]`: runs every benchmark suite (or the named ones) and prints
// throughput, latency and memory. Latest numbers are kept in bench/RESULTS.md.
import { machine, type BenchSuite } from './util.js';

const suites: (() => Promise<BenchSuite>)[] = [
  async () => (await import('./audio.js')).suite,
  async () => (await import('./engine.js')).suite,
  async () => (await import('./roofline.js')).suite,
  async () => (await import('./e2e.js')).suite,
  async () => (await import('./batching.js')).suite,
  async () => (await import('./store.js')).suite,
  async () => (await import('./watch.js')).suite,
  async () => (await import('./vad.js')).suite,
  async () => (await import('./text.js')).suite,
  async () => (await import('./models.js')).suite,
  async () => (await import('./daemon.js')).suite,
  async () => (await import('./dictation.js')).suite,
];

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
console.log(`wx bench — ${new Date().toISOString()} — ${machine()}`);
for (const load of suites) {
  const suite = await load();
  if (wanted.length > 0 && !wanted.includes(suite.name)) continue;
  console.log(`\n## ${suite.name}: ${suite.description}\n`);
  await suite.run(process.argv.slice(2));
}
