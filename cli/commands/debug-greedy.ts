// `wx debug greedy`: plain greedy decoding of a file's first 30-s window with exactly the
// semantics of ../shared/fixtures/reference/reference.json (prompt, special-token suppression,
// nothing else), for parity checks of the engine.
import type { Command } from 'commander';
import { resolveModel } from '../../daemon/models/registry.js';
import { wxHome } from '../../daemon/paths.js';
import type { Precision } from '../../daemon/engine/manifest.js';
import { WxError } from '../../daemon/errors.js';

export function registerDebugGreedy(debug: Command): void {
  debug
    .command('greedy <audio>')
    .description("greedy-decode the first 30 s of a file (reference semantics: prompt, special tokens banned, plain argmax)")
    .option('--model <name|dir>', 'installed model name or Hugging Face model directory (default: WX_MODEL)')
    .option('--precision <p>', 'fp32 or int8', 'fp32')
    .option('--timestamps', 'allow timestamp tokens (prompt without <|notimestamps|>)')
    .option('--steps <n>', 'how many first steps of top-5 logits to print', '12')
    .option('--json', 'print JSON (the default output format)')
    .action(async (audio: string, o: { model?: string; precision: string; timestamps?: boolean; steps: string }) => {
      const precision = o.precision as Precision;
      if (precision !== 'fp32' && precision !== 'int8') throw new WxError('cli.bad_option', `--precision must be fp32 or int8, not ${o.precision}`);
      const modelArg = o.model ?? process.env.WX_MODEL;
      if (!modelArg) throw new WxError('cli.no_model', 'no model: pass --model or set WX_MODEL');
      const home = wxHome();
      // Loaded on use: the engine and audio modules pull in ONNX Runtime and the native addon.
      const [{ loadAudio }, { WhisperEngine }] = await Promise.all([import('../../daemon/audio/index.js'), import('../../daemon/engine/index.js')]);
      const installed = await resolveModel(modelArg, { home, precision });
      const engine = await WhisperEngine.open(installed.dir, { precision });
      try {
        const samples = await loadAudio(audio);
        const enc = await engine.encodeAudio(samples, [0], [Math.min(samples.length, engine.windowSamples)]);
        const steps = Number.parseInt(o.steps, 10);


        const [full] = await engine.decode([{ enc, index: 0, options: { rules: 'plain', timestamps: !!o.timestamps, temperature: 0, ...(engine.tokenizer.multilingual ? { language: 'en' } : {}) }, keepFirstLogits: steps }]);
        const tokens = full!.completed ? [...full!.tokens, engine.tokenizer.eot] : full!.tokens;
        const top5 = (full!.firstLogits ?? []).map((row) => topK(row, 5));
        process.stdout.write(JSON.stringify({ tokens, top5_first_steps: top5, text: full!.text }) + '\n');
      } finally {
        await engine.close();
      }
    });
}

function topK(row: Float32Array, k: number): [number, number][] {
  const best: [number, number][] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (best.length < k || v > best[best.length - 1]![1]) {
      best.push([i, v]);
      best.sort((a, b) => b[1] - a[1]);
      if (best.length > k) best.pop();
    }
  }
  return best;
}
